//! Settings in layers: built-in defaults, then an optional TOML file (`KILN_CONFIG`), then
//! `KILN_*` environment variables. A missing or invalid value is a one-line error naming the
//! variable, so a binary can print it and exit non-zero.
//!
//! In the TOML file a variable is written without its prefix, in lower case:
//! `KILN_BUILD_TIMEOUT_SECS` is `build_timeout_secs = 300`.
//!
//! - `source`: the raw values in their layers, and [`ConfigError`], which names the variable;
//! - `load`: [`Settings::from_env`], every variable read into its setting;
//! - one file a section: `storage` (artifacts, S3), `fleet`, `webhooks`, `limits`, `sandbox`,
//!   `audit`, `maintenance`; `secrets`: the values a build log must never show.

mod audit;
mod fleet;
mod limits;
mod load;
mod maintenance;
mod sandbox;
mod secrets;
mod source;
mod storage;
mod webhooks;

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

pub use audit::{AuditMode, AuditSettings};
pub use fleet::FleetSettings;
pub use limits::{LimitSettings, Rate, QUOTA_WINDOW};
pub use maintenance::MaintenanceSettings;
pub use sandbox::{AllowedHost, BuildUids, Egress, SandboxMode, SandboxSettings};
pub use source::ConfigError;
pub use storage::{ArtifactsLocation, S3Settings};
pub use webhooks::WebhookSettings;

/// Every setting of every Kiln binary. Each binary checks the ones it needs with
/// [`Settings::require_api`] and friends.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: SecretString,
    pub redis_url: SecretString,
    /// Prefix of every Redis key (tests give each test its own).
    pub redis_prefix: String,
    pub artifacts: ArtifactsLocation,
    pub s3: S3Settings,
    pub api_addr: String,
    pub preview_addr: String,
    pub preview_domain: String,
    /// `http` or `https`: how preview URLs are written.
    pub preview_scheme: String,
    /// The port written in preview URLs; `None` means the preview listener's own port.
    pub preview_public_port: Option<u16>,
    pub hmac_secret: Option<SecretString>,
    pub api_tokens: Vec<SecretString>,
    pub data_dir: PathBuf,
    pub work_dir: PathBuf,
    pub pnpm_store: PathBuf,
    pub build_timeout: Duration,
    pub max_output_bytes: u64,
    /// Files one build may publish (`KILN_MAX_OUTPUT_FILES`, 20,000).
    pub max_output_files: usize,
    pub max_log_bytes: usize,
    pub max_body_bytes: usize,
    pub max_files: usize,
    pub max_file_bytes: usize,
    pub generator_cmd: Option<String>,
    pub builder_concurrency: usize,
    pub builder_id: Option<String>,
    /// Where a builder daemon serves `GET /metrics` and `/healthz` (`KILN_METRICS_ADDR`,
    /// default `127.0.0.1:9465`; `off`: nowhere). Port 0 picks a free port; the daemon's
    /// fleet report says which.
    pub metrics_addr: Option<String>,
    /// How a running build's claim is kept and given up.
    pub fleet: FleetSettings,
    pub webhooks: WebhookSettings,
    /// Whether builders record build events (`KILN_BUILD_EVENTS=off` is for measuring what
    /// they cost; clients then see only `build_queued`).
    pub build_events: bool,
    /// The API's rate limit, quotas and request caps.
    pub limits: LimitSettings,
    /// How untrusted build processes are confined and limited.
    pub sandbox: SandboxSettings,
    /// The dependency audit after install.
    pub audit: AuditSettings,
    /// What the maintenance run keeps (retention, blob GC, verification).
    pub maintenance: MaintenanceSettings,
}

impl Settings {
    pub fn file_limits(&self) -> crate::domain::FileLimits {
        crate::domain::FileLimits {
            max_files: self.max_files,
            max_file_bytes: self.max_file_bytes,
        }
    }
}
