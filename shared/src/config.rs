//! Settings in layers: built-in defaults, then an optional TOML file (`KILN_CONFIG`), then
//! `KILN_*` environment variables. A missing or invalid value is a one-line error naming the
//! variable, so a binary can print it and exit non-zero.
//!
//! In the TOML file a variable is written without its prefix, in lower case:
//! `KILN_BUILD_TIMEOUT_SECS` is `build_timeout_secs = 300`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

mod audit;
mod limits;
mod maintenance;
mod sandbox;
pub use audit::{AuditMode, AuditSettings};
pub use limits::{LimitSettings, Rate, QUOTA_WINDOW};
pub use maintenance::MaintenanceSettings;
pub use sandbox::{AllowedHost, BuildUids, Egress, SandboxMode, SandboxSettings};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var} is required: {meaning}")]
    Missing {
        var: &'static str,
        meaning: &'static str,
    },
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("KILN_CONFIG: cannot read {path}: {reason}")]
    File { path: String, reason: String },
}

/// Where artifacts live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactsLocation {
    /// `file:///abs/path`
    File(PathBuf),
    /// `s3://bucket` or `s3://bucket/prefix`
    S3 { bucket: String, prefix: String },
}

impl ArtifactsLocation {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(path) = raw.strip_prefix("file://") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(format!("expected file:///absolute/path, got {raw:?}"));
            }
            return Ok(Self::File(path));
        }
        if let Some(rest) = raw.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("expected s3://bucket[/prefix], got {raw:?}"));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        Err(format!(
            "expected file:///absolute/path or s3://bucket[/prefix], got {raw:?}"
        ))
    }
}

/// S3 connection settings (R2, Garage, AWS).
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
}

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

/// How builders hold, lose and hand back builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSettings {
    /// A running build's claim lasts this long unrenewed (`KILN_LEASE_SECS`, default 60); its
    /// builder renews it every third of that, so the lease is always three renewal periods.
    /// When it runs out, another daemon reclaims the build.
    pub lease: Duration,
    /// Builders lost by one build before it fails (`KILN_MAX_ATTEMPTS`, default 3).
    pub max_attempts: u32,
    /// Between SIGTERM and SIGKILL when a build is cancelled (`KILN_CANCEL_GRACE_SECS`, 10).
    pub cancel_grace: Duration,
    /// How long a daemon told to stop lets its running builds finish before handing them
    /// back to the queue (`KILN_DRAIN_SECS`, default 300).
    pub drain: Duration,
    /// How often queued builds missing from the stream are looked for
    /// (`KILN_RECONCILE_SECS`, default 30; one daemon of the fleet at a time).
    pub reconcile_every: Duration,
    /// Builds of one user running at once across the whole fleet
    /// (`KILN_MAX_RUNNING_PER_USER`; unset: no cap). A daemon that reads a build of a user at
    /// the cap puts it back at the end of the queue and reads on.
    pub max_running_per_user: Option<u32>,
}

impl FleetSettings {
    /// How often a running build's claim is renewed.
    pub fn renew_every(&self) -> Duration {
        self.lease / 3
    }
}

/// How webhook deliveries run (in every API and builder process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Whether this process delivers (`KILN_WEBHOOK_DELIVERY=on|off`).
    pub deliver: bool,
    /// The retry time base (`KILN_WEBHOOK_RETRY_UNIT_MS`): retries come after 1, 2, 4, 8 and 16
    /// of it. One minute in production; tests shorten it.
    pub retry_unit: Duration,
    /// The longest one attempt waits for the receiver's answer.
    pub timeout: Duration,
    /// Deliveries in flight at once, per process.
    pub concurrency: usize,
    /// How often due deliveries are looked for.
    pub poll: Duration,
}

/// `%xx` decoding of a URL component.
fn urlencoding_decode(raw: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
}

/// The meaning of each required variable, printed when it is missing.
const DATABASE_URL: (&str, &str) = ("KILN_DATABASE_URL", "the PostgreSQL URL");
const ARTIFACTS: (&str, &str) = (
    "KILN_ARTIFACTS",
    "where artifacts live (file:///abs/path or s3://bucket)",
);
const HMAC_SECRET: (&str, &str) = ("KILN_HMAC_SECRET", "the shared secret of the product back end");

/// Reads raw values by variable name: the environment first, then the file.
struct Source {
    env: HashMap<String, String>,
    file: HashMap<String, String>,
}

impl Source {
    fn get(&self, var: &str) -> Option<String> {
        if let Some(v) = self.env.get(var) {
            return Some(v.clone()).filter(|v| !v.is_empty());
        }
        let key = var.trim_start_matches("KILN_").to_ascii_lowercase();
        self.file.get(&key).cloned().filter(|v| !v.is_empty())
    }

    fn required(&self, (var, meaning): (&'static str, &'static str)) -> Result<String, ConfigError> {
        self.get(var).ok_or(ConfigError::Missing { var, meaning })
    }

    fn parsed<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|_| ConfigError::Invalid {
                var,
                reason: format!("expected {expected}, got {raw:?}"),
            }),
        }
    }

    /// `on`/`off` (also `true`/`false`, `1`/`0`).
    fn switch(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["on", "true", "1"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["off", "false", "0"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(ConfigError::Invalid {
                var,
                reason: format!("expected on or off, got {v:?}"),
            }),
        }
    }

    fn positive(&self, var: &'static str, default: u64) -> Result<u64, ConfigError> {
        let v = self.parsed(var, default, "a positive integer")?;
        if v == 0 {
            return Err(ConfigError::Invalid {
                var,
                reason: "must be greater than 0".into(),
            });
        }
        Ok(v)
    }
}

impl Settings {
    /// Loads from the process environment (and `KILN_CONFIG`, when set).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Loads from the given variables (and the `KILN_CONFIG` file they name, if any).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = vars.into_iter().collect();
        let file = match env.get("KILN_CONFIG").filter(|p| !p.is_empty()) {
            Some(path) => read_toml(Path::new(path))?,
            None => HashMap::new(),
        };
        Self::load(&Source { env, file })
    }

    fn load(src: &Source) -> Result<Self, ConfigError> {
        let database_url = src.required(DATABASE_URL)?;
        let artifacts_raw = src.required(ARTIFACTS)?;
        let artifacts = ArtifactsLocation::parse(&artifacts_raw).map_err(|reason| ConfigError::Invalid {
            var: ARTIFACTS.0,
            reason,
        })?;
        let data_dir = PathBuf::from(src.get("KILN_DATA_DIR").unwrap_or_else(|| ".kiln".into()));
        let work_dir = src
            .get("KILN_WORK_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("work"));
        // Inside the work folder by default: a sandboxed install can then hard-link from it
        // (see the builder's sandbox).
        let pnpm_store = src
            .get("KILN_PNPM_STORE")
            .map(PathBuf::from)
            .unwrap_or_else(|| work_dir.join("pnpm-store"));
        let preview_scheme = src.get("KILN_PREVIEW_SCHEME").unwrap_or_else(|| "http".into());
        if preview_scheme != "http" && preview_scheme != "https" {
            return Err(ConfigError::Invalid {
                var: "KILN_PREVIEW_SCHEME",
                reason: format!("expected http or https, got {preview_scheme:?}"),
            });
        }
        let preview_public_port = match src.get("KILN_PREVIEW_PUBLIC_PORT") {
            None => None,
            Some(raw) => Some(raw.parse::<u16>().map_err(|_| ConfigError::Invalid {
                var: "KILN_PREVIEW_PUBLIC_PORT",
                reason: format!("expected a port number, got {raw:?}"),
            })?),
        };
        let redis_prefix = src.get("KILN_REDIS_PREFIX").unwrap_or_else(|| "kiln".into());
        if redis_prefix.contains(char::is_whitespace) {
            return Err(ConfigError::Invalid {
                var: "KILN_REDIS_PREFIX",
                reason: "must not contain whitespace".into(),
            });
        }
        let api_tokens = src
            .get("KILN_API_TOKENS")
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(|t| SecretString::from(t.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let mb = 1024 * 1024;
        Ok(Settings {
            database_url: database_url.into(),
            redis_url: src
                .get("KILN_REDIS_URL")
                .unwrap_or_else(|| "redis://127.0.0.1:6379".into())
                .into(),
            redis_prefix,
            artifacts,
            s3: S3Settings {
                endpoint: src.get("KILN_S3_ENDPOINT"),
                region: src.get("KILN_S3_REGION").unwrap_or_else(|| "auto".into()),
                access_key_id: src.get("AWS_ACCESS_KEY_ID"),
                secret_access_key: src.get("AWS_SECRET_ACCESS_KEY").map(Into::into),
            },
            api_addr: src
                .get("KILN_API_ADDR")
                .unwrap_or_else(|| "127.0.0.1:8080".into()),
            preview_addr: src
                .get("KILN_PREVIEW_ADDR")
                .unwrap_or_else(|| "127.0.0.1:8081".into()),
            preview_domain: src
                .get("KILN_PREVIEW_DOMAIN")
                .unwrap_or_else(|| "localhost".into())
                .trim_matches('.')
                .to_ascii_lowercase(),
            preview_scheme,
            preview_public_port,
            hmac_secret: src.get(HMAC_SECRET.0).map(Into::into),
            api_tokens,
            data_dir,
            work_dir,
            pnpm_store,
            build_timeout: Duration::from_secs(src.positive("KILN_BUILD_TIMEOUT_SECS", 300)?),
            max_output_bytes: src.positive("KILN_MAX_OUTPUT_MB", 100)? * mb,
            max_output_files: src.positive("KILN_MAX_OUTPUT_FILES", 20_000)? as usize,
            max_log_bytes: (src.positive("KILN_MAX_LOG_KB", 1024)? * 1024) as usize,
            max_body_bytes: (src.positive("KILN_MAX_BODY_MB", 50)? * mb) as usize,
            max_files: src.positive("KILN_MAX_FILES", 5_000)? as usize,
            max_file_bytes: (src.positive("KILN_MAX_FILE_MB", 10)? * mb) as usize,
            generator_cmd: src.get("KILN_GENERATOR_CMD"),
            builder_concurrency: src.positive("KILN_BUILDER_CONCURRENCY", 1)? as usize,
            builder_id: src.get("KILN_BUILDER_ID"),
            metrics_addr: match src.get("KILN_METRICS_ADDR") {
                Some(off) if off.eq_ignore_ascii_case("off") => None,
                Some(addr) => Some(addr),
                None => Some("127.0.0.1:9465".into()),
            },
            fleet: FleetSettings {
                lease: Duration::from_secs(src.positive("KILN_LEASE_SECS", 60)?),
                max_attempts: src.positive("KILN_MAX_ATTEMPTS", 3)?.min(1000) as u32,
                cancel_grace: Duration::from_secs(src.positive("KILN_CANCEL_GRACE_SECS", 10)?),
                drain: Duration::from_secs(src.positive("KILN_DRAIN_SECS", 300)?),
                reconcile_every: Duration::from_secs(src.positive("KILN_RECONCILE_SECS", 30)?),
                max_running_per_user: match src.get("KILN_MAX_RUNNING_PER_USER") {
                    None => None,
                    Some(_) => Some(src.positive("KILN_MAX_RUNNING_PER_USER", 1)?.min(1_000_000) as u32),
                },
            },
            webhooks: WebhookSettings {
                deliver: src.switch("KILN_WEBHOOK_DELIVERY", true)?,
                retry_unit: Duration::from_millis(src.positive("KILN_WEBHOOK_RETRY_UNIT_MS", 60_000)?),
                timeout: Duration::from_secs(src.positive("KILN_WEBHOOK_TIMEOUT_SECS", 10)?),
                concurrency: src.positive("KILN_WEBHOOK_CONCURRENCY", 16)? as usize,
                poll: Duration::from_millis(src.positive("KILN_WEBHOOK_POLL_MS", 500)?),
            },
            build_events: src.switch("KILN_BUILD_EVENTS", true)?,
            sandbox: SandboxSettings::load(src)?,
            audit: AuditSettings::load(src)?,
            maintenance: MaintenanceSettings::load(src)?,
            limits: LimitSettings::load(src)?,
        })
    }

    /// Every secret value these settings hold (and the passwords inside the URLs), for
    /// redaction: none of them may ever reach a build log.
    pub fn secret_values(&self) -> Vec<String> {
        use secrecy::ExposeSecret;
        let mut out = Vec::new();
        for url in [&self.database_url, &self.redis_url] {
            let raw = url.expose_secret().to_owned();
            if let Ok(parsed) = url::Url::parse(&raw) {
                if let Some(password) = parsed.password() {
                    out.push(password.to_owned());
                    if let Ok(decoded) = urlencoding_decode(password) {
                        out.push(decoded);
                    }
                }
            }
            out.push(raw);
        }
        out.extend(self.hmac_secret.iter().map(|s| s.expose_secret().to_owned()));
        out.extend(self.api_tokens.iter().map(|s| s.expose_secret().to_owned()));
        out.extend(
            self.s3
                .secret_access_key
                .iter()
                .map(|s| s.expose_secret().to_owned()),
        );
        out.extend(self.s3.access_key_id.iter().cloned());
        out
    }

    /// The API also needs the HMAC secret.
    pub fn require_api(&self) -> Result<(), ConfigError> {
        if self.hmac_secret.is_none() {
            return Err(ConfigError::Missing {
                var: HMAC_SECRET.0,
                meaning: HMAC_SECRET.1,
            });
        }
        Ok(())
    }

    pub fn file_limits(&self) -> crate::domain::FileLimits {
        crate::domain::FileLimits {
            max_files: self.max_files,
            max_file_bytes: self.max_file_bytes,
        }
    }
}

/// `uid:gid`, neither of them root.
fn read_toml(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let err = |reason: String| ConfigError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(e.message().to_owned()))?;
    table
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned).unwrap_or_else(|| i.to_string()))
                    .collect::<Vec<_>>()
                    .join(","),
                other => return Err(err(format!("{k}: unsupported value {other}"))),
            };
            Ok((k.to_ascii_lowercase(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn missing_required_variables_are_named() {
        let err = Settings::from_vars(vars(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "KILN_DATABASE_URL is required: the PostgreSQL URL"
        );
        let err = Settings::from_vars(vars(&[("KILN_DATABASE_URL", "postgres://x")])).unwrap_err();
        assert!(err.to_string().starts_with("KILN_ARTIFACTS is required"));
    }

    #[test]
    fn invalid_values_are_named() {
        let base = [
            ("KILN_DATABASE_URL", "postgres://x"),
            ("KILN_ARTIFACTS", "file:///tmp/a"),
        ];
        let mut v = vars(&base);
        v.push(("KILN_BUILD_TIMEOUT_SECS".into(), "soon".into()));
        let err = Settings::from_vars(v).unwrap_err().to_string();
        assert_eq!(
            err,
            "KILN_BUILD_TIMEOUT_SECS is invalid: expected a positive integer, got \"soon\""
        );
        let err = Settings::from_vars(vars(&[base[0], ("KILN_ARTIFACTS", "relative/dir")]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("KILN_ARTIFACTS is invalid"), "{err}");
    }

    #[test]
    fn the_per_user_running_cap_is_unset_or_positive() {
        let base = [
            ("KILN_DATABASE_URL", "postgres://x"),
            ("KILN_ARTIFACTS", "file:///tmp/a"),
        ];
        let s = Settings::from_vars(vars(&base)).unwrap();
        assert_eq!(s.fleet.max_running_per_user, None);
        let s = Settings::from_vars(vars(&[base[0], base[1], ("KILN_MAX_RUNNING_PER_USER", "2")])).unwrap();
        assert_eq!(s.fleet.max_running_per_user, Some(2));
        let err = Settings::from_vars(vars(&[base[0], base[1], ("KILN_MAX_RUNNING_PER_USER", "0")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "KILN_MAX_RUNNING_PER_USER is invalid: must be greater than 0"
        );
    }

    #[test]
    fn the_audit_database_is_refreshed_from_osv_unless_told_otherwise() {
        let base = [
            ("KILN_DATABASE_URL", "postgres://x"),
            ("KILN_ARTIFACTS", "file:///tmp/a"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            Settings::from_vars(vars(&[&base[..], extra].concat())).map(|s| s.audit)
        };
        let off = with(&[]).unwrap();
        assert_eq!(
            (off.source, off.max_bytes),
            (None, 512 << 20),
            "no audit, no refresh"
        );
        let on = [("KILN_AUDIT", "warn"), ("KILN_AUDIT_DB", "/var/lib/kiln/osv/npm")];
        assert_eq!(with(&on).unwrap().source.as_deref(), Some(audit::OSV_NPM_EXPORT));
        let mirror = with(&[
            on[0],
            on[1],
            ("KILN_AUDIT_SOURCE", "https://mirror.example/npm.zip"),
        ]);
        assert_eq!(
            mirror.unwrap().source.as_deref(),
            Some("https://mirror.example/npm.zip")
        );
        assert_eq!(
            with(&[on[0], on[1], ("KILN_AUDIT_SOURCE", "OFF")])
                .unwrap()
                .source,
            None
        );
        let err = with(&[on[0], on[1], ("KILN_AUDIT_SOURCE", "file:///osv.zip")]).unwrap_err();
        assert!(err.to_string().contains("KILN_AUDIT_SOURCE is invalid"), "{err}");
        assert!(with(&[on[0], on[1], ("KILN_AUDIT_MAX_MB", "0")]).is_err());
    }

    #[test]
    fn defaults_file_and_environment_layer() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kiln.toml");
        std::fs::write(
            &file,
            "build_timeout_secs = 60\nmax_output_mb = 5\napi_tokens = [\"a\", \"b\"]\n",
        )
        .unwrap();
        let s = Settings::from_vars(vars(&[
            ("KILN_CONFIG", file.to_str().unwrap()),
            ("KILN_DATABASE_URL", "postgres://x"),
            ("KILN_ARTIFACTS", "s3://bucket/some/prefix/"),
            ("KILN_MAX_OUTPUT_MB", "7"),
        ]))
        .unwrap();
        assert_eq!(s.build_timeout, Duration::from_secs(60));
        assert_eq!(s.max_output_bytes, 7 * 1024 * 1024);
        assert_eq!(s.api_tokens.len(), 2);
        assert_eq!(s.s3.region, "auto");
        assert_eq!(
            s.artifacts,
            ArtifactsLocation::S3 {
                bucket: "bucket".into(),
                prefix: "some/prefix".into()
            }
        );
        assert_eq!(s.api_addr, "127.0.0.1:8080");
        assert!(s.require_api().is_err());
    }
}
