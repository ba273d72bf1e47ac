//! Where previews are served and how their URLs are written.

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
