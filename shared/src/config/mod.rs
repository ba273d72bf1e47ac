//! Settings in layers: built-in defaults, then an optional TOML file (`KILN_CONFIG`), then
//! `KILN_*` environment variables. A missing or invalid value is a one-line error naming the
//! variable, so a binary can print it and exit non-zero.
//!
//! In the TOML file a variable is written without its prefix, in lower case:
//! `KILN_BUILD_TIMEOUT_SECS` is `build_timeout_secs = 300`.
//!
//! - `definition`: what a [`Variable`] is (name, kind, default, readers, secret, meaning);
//! - one file a section, each defining its variables (and its settings): `general` (the
//!   file, the data folder, logs), `connections` (database, redis), `storage` (artifacts,
//!   S3), `api`, `preview`, `builder`, `fleet`, `webhooks`, `limits`, `sandbox`, `audit`,
//!   `maintenance`, `packages`; `variables`: every section, in order;
//! - `source`: the raw values in their layers, read through their definitions, and
//!   [`ConfigError`], which names the variable;
//! - `load`: [`Settings::from_env`], every variable read into its setting;
//! - `unknown`: the `KILN_*` names (and file keys) no binary reads, and the closest known one;
//! - `render`: `--help`, `deploy/kiln.env.example` and the reference's tables, from the
//!   definitions;
//! - `secrets`: the values a build log must never show.

mod api;
mod audit;
mod builder;
mod connections;
mod definition;
mod encryption;
mod fleet;
mod general;
mod limits;
mod load;
mod maintenance;
mod packages;
mod preview;
mod render;
mod sandbox;
mod secrets;
mod source;
mod storage;
mod unknown;
mod variables;
mod webhooks;

pub use api::ApiSettings;
pub use audit::{AuditMode, AuditSettings};
pub use builder::BuilderSettings;
pub use connections::{DatabaseSettings, RedisSettings};
pub use definition::{Binary, Fallback, Kind, Section, Variable};
pub use encryption::EncryptionSettings;
pub use fleet::FleetSettings;
pub use limits::{LimitSettings, Rate, QUOTA_WINDOW};
pub use maintenance::MaintenanceSettings;
pub use packages::{PackageCacheSettings, DEFAULT_REGISTRY};
pub use preview::PreviewSettings;
pub use render::{env_example, help, reference, REGENERATE};
pub use sandbox::{AllowedHost, BuildUids, Egress, SandboxMode, SandboxSettings};
pub use source::ConfigError;
use std::path::PathBuf;
pub use storage::{ArtifactsLocation, S3Settings, StorageSettings};
pub use unknown::{unknown_keys, unknown_variables, Unknown};
pub use variables::{find, secret_variables, variables, SECTIONS};
pub use webhooks::WebhookSettings;

/// Every setting of every Kiln binary, in one section per part of the farm. Each binary
/// checks the ones it needs with [`Settings::require_api`] and friends.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    /// Where artifacts live (`KILN_ARTIFACTS`) and how to reach S3.
    pub storage: StorageSettings,
    pub api: ApiSettings,
    pub preview: PreviewSettings,
    pub builder: BuilderSettings,
    /// Where a binary keeps its local files by default (`KILN_DATA_DIR`, `.kiln`).
    pub data_dir: PathBuf,
    /// How a running build's claim is kept and given up.
    pub fleet: FleetSettings,
    pub webhooks: WebhookSettings,
    /// The API's rate limit, quotas and request caps.
    pub limits: LimitSettings,
    /// How untrusted build processes are confined and limited.
    pub sandbox: SandboxSettings,
    /// The dependency audit after install.
    pub audit: AuditSettings,
    /// What the maintenance run keeps (retention, blob GC, verification).
    pub maintenance: MaintenanceSettings,
    /// The fleet-wide package cache.
    pub packages: PackageCacheSettings,
    /// The keys of projects' secret environment values.
    pub encryption: EncryptionSettings,
}
