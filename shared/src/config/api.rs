//! The API's listener, credentials and request caps.

use secrecy::SecretString;

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
