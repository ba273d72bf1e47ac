//! The API's listener, credentials and request caps.

use secrecy::SecretString;

use super::definition::{section, Fallback, Kind, Variable, API, API_BUILDER};

section! {
    title: "API",
    intro: "The API's listener, whom it trusts, and how large a build request may be.",
    API_ADDR = Variable::new(
        "KILN_API_ADDR",
        Kind::Address,
        Fallback::Value("127.0.0.1:8080"),
        API,
        "the API's listener",
    );
    HMAC_SECRET = Variable::new(
        "KILN_HMAC_SECRET",
        Kind::Text,
        Fallback::Required,
        API,
        "the shared secret of the product back end",
    )
    .secret()
    .example("CHANGE-ME-64-random-hex");
    API_TOKENS = Variable::new(
        "KILN_API_TOKENS",
        Kind::Format("comma-separated tokens"),
        Fallback::Otherwise("none"),
        API,
        "bearer tokens for the CLI and operators",
    )
    .secret()
    .example("CHANGE-ME-operator-token");
    MAX_BODY_MB = Variable::new(
        "KILN_MAX_BODY_MB",
        Kind::Positive,
        Fallback::Value("50"),
        API,
        "the largest request body, in MB",
    );
    MAX_FILES = Variable::new(
        "KILN_MAX_FILES",
        Kind::Positive,
        Fallback::Value("5000"),
        API_BUILDER,
        "files one build request (or a generator's output) may carry",
    );
    MAX_FILE_MB = Variable::new(
        "KILN_MAX_FILE_MB",
        Kind::Positive,
        Fallback::Value("10"),
        API_BUILDER,
        "the largest file of a build request (or a generator's output), in MB",
    );
}

/// What the API listens on, whom it trusts, and how large a build request may be.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `KILN_API_ADDR`, default `127.0.0.1:8080`.
    pub addr: String,
    /// The product back end's shared secret (`KILN_HMAC_SECRET`; required by the API).
    pub hmac_secret: Option<SecretString>,
    /// Bearer tokens for people and tools (`KILN_API_TOKENS`, comma-separated).
    pub tokens: Vec<SecretString>,
    /// The largest request body (`KILN_MAX_BODY_MB`, 50).
    pub max_body_bytes: usize,
    /// Files one build request may carry (`KILN_MAX_FILES`, 5,000).
    pub max_files: usize,
    /// The largest file of a build request (`KILN_MAX_FILE_MB`, 10).
    pub max_file_bytes: usize,
}

impl ApiSettings {
    pub fn file_limits(&self) -> crate::domain::FileLimits {
        crate::domain::FileLimits {
            max_files: self.max_files,
            max_file_bytes: self.max_file_bytes,
        }
    }
}
