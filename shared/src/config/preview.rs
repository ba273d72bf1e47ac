//! Where previews are served and how their URLs are written.

use super::definition::{section, Fallback, Kind, Variable, API, API_OPS};

section! {
    title: "Previews",
    intro: "The preview listener (a separate origin: preview content is untrusted) and how preview URLs are written behind a proxy.",
    PREVIEW_ADDR = Variable::new(
        "KILN_PREVIEW_ADDR",
        Kind::Address,
        Fallback::Value("127.0.0.1:8081"),
        API,
        "the preview listener",
    );
    PREVIEW_DOMAIN = Variable::new(
        "KILN_PREVIEW_DOMAIN",
        Kind::Text,
        Fallback::Value("localhost"),
        API_OPS,
        "the preview host suffix (`<label>.<domain>`)",
    )
    .example("preview.example.com");
    PREVIEW_SCHEME = Variable::new(
        "KILN_PREVIEW_SCHEME",
        Kind::OneOf(&["http", "https"]),
        Fallback::Value("http"),
        API_OPS,
        "the scheme written in preview URLs",
    )
    .example("https");
    PREVIEW_PUBLIC_PORT = Variable::new(
        "KILN_PREVIEW_PUBLIC_PORT",
        Kind::Format("a port number"),
        Fallback::Otherwise("the preview listener's port"),
        API_OPS,
        "the port written in preview URLs",
    )
    .example("443");
}

/// The preview listener and the shape of preview URLs
/// (`{scheme}://{label}.{domain}[:{port}]/`).
#[derive(Debug, Clone)]
pub struct PreviewSettings {
    /// `KILN_PREVIEW_ADDR`, default `127.0.0.1:8081`.
    pub addr: String,
    /// `KILN_PREVIEW_DOMAIN`, default `localhost` (lower case, no leading or trailing dot).
    pub domain: String,
    /// `http` or `https`: how preview URLs are written (`KILN_PREVIEW_SCHEME`).
    pub scheme: String,
    /// The port written in preview URLs (`KILN_PREVIEW_PUBLIC_PORT`); `None` means the
    /// preview listener's own port.
    pub public_port: Option<u16>,
}
