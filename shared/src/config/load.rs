//! Loading: every `KILN_*` variable read from its [`Source`] into its setting, with its default.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use super::source::{read_toml, ConfigError, Source};
use super::{
    ApiSettings, ArtifactsLocation, AuditSettings, BuilderSettings, DatabaseSettings, FleetSettings,
    LimitSettings, MaintenanceSettings, PreviewSettings, RedisSettings, S3Settings, SandboxSettings,
    Settings, StorageSettings, WebhookSettings,
};

/// The meaning of each required variable, printed when it is missing.
const DATABASE_URL: (&str, &str) = ("KILN_DATABASE_URL", "the PostgreSQL URL");
const ARTIFACTS: (&str, &str) = (
    "KILN_ARTIFACTS",
    "where artifacts live (file:///abs/path or s3://bucket)",
);
const HMAC_SECRET: (&str, &str) = ("KILN_HMAC_SECRET", "the shared secret of the product back end");

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
        let mut source = Source { env, file };
        source.read_secret_files()?;
        Self::load(&source)
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
            database: DatabaseSettings {
                url: database_url.into(),
            },
            redis: RedisSettings {
                url: src
                    .get("KILN_REDIS_URL")
                    .unwrap_or_else(|| "redis://127.0.0.1:6379".into())
                    .into(),
                prefix: redis_prefix,
            },
            storage: StorageSettings {
                artifacts,
                s3: S3Settings {
                    endpoint: src.get("KILN_S3_ENDPOINT"),
                    region: src.get("KILN_S3_REGION").unwrap_or_else(|| "auto".into()),
                    access_key_id: src.get("AWS_ACCESS_KEY_ID"),
                    secret_access_key: src.get("AWS_SECRET_ACCESS_KEY").map(Into::into),
                },
            },
            api: ApiSettings {
                addr: src
                    .get("KILN_API_ADDR")
                    .unwrap_or_else(|| "127.0.0.1:8080".into()),
                hmac_secret: src.get(HMAC_SECRET.0).map(Into::into),
                tokens: api_tokens,
                max_body_bytes: (src.positive("KILN_MAX_BODY_MB", 50)? * mb) as usize,
                max_files: src.positive("KILN_MAX_FILES", 5_000)? as usize,
                max_file_bytes: (src.positive("KILN_MAX_FILE_MB", 10)? * mb) as usize,
            },
            preview: PreviewSettings {
                addr: src
                    .get("KILN_PREVIEW_ADDR")
                    .unwrap_or_else(|| "127.0.0.1:8081".into()),
                domain: src
                    .get("KILN_PREVIEW_DOMAIN")
                    .unwrap_or_else(|| "localhost".into())
                    .trim_matches('.')
                    .to_ascii_lowercase(),
                scheme: preview_scheme,
                public_port: preview_public_port,
            },
            builder: BuilderSettings {
                id: src.get("KILN_BUILDER_ID"),
                concurrency: src.positive("KILN_BUILDER_CONCURRENCY", 1)? as usize,
                work_dir,
                pnpm_store,
                build_timeout: Duration::from_secs(src.positive("KILN_BUILD_TIMEOUT_SECS", 300)?),
                max_output_bytes: src.positive("KILN_MAX_OUTPUT_MB", 100)? * mb,
                max_output_files: src.positive("KILN_MAX_OUTPUT_FILES", 20_000)? as usize,
                max_log_bytes: (src.positive("KILN_MAX_LOG_KB", 1024)? * 1024) as usize,
                generator_cmd: src.get("KILN_GENERATOR_CMD"),
                metrics_addr: match src.get("KILN_METRICS_ADDR") {
                    Some(off) if off.eq_ignore_ascii_case("off") => None,
                    Some(addr) => Some(addr),
                    None => Some("127.0.0.1:9465".into()),
                },
                build_events: src.switch("KILN_BUILD_EVENTS", true)?,
            },
            data_dir,
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
            sandbox: SandboxSettings::load(src)?,
            audit: AuditSettings::load(src)?,
            maintenance: MaintenanceSettings::load(src)?,
            limits: LimitSettings::load(src)?,
        })
    }

    /// The API also needs the HMAC secret.
    pub fn require_api(&self) -> Result<(), ConfigError> {
        if self.api.hmac_secret.is_none() {
            return Err(ConfigError::Missing {
                var: HMAC_SECRET.0,
                meaning: HMAC_SECRET.1,
            });
        }
        Ok(())
    }
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
        assert_eq!(
            with(&on).unwrap().source.as_deref(),
            Some(super::super::audit::OSV_NPM_EXPORT)
        );
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
        assert_eq!(s.builder.build_timeout, Duration::from_secs(60));
        assert_eq!(s.builder.max_output_bytes, 7 * 1024 * 1024);
        assert_eq!(s.api.tokens.len(), 2);
        assert_eq!(s.storage.s3.region, "auto");
        assert_eq!(
            s.storage.artifacts,
            ArtifactsLocation::S3 {
                bucket: "bucket".into(),
                prefix: "some/prefix".into()
            }
        );
        assert_eq!(s.api.addr, "127.0.0.1:8080");
        assert!(s.require_api().is_err());
    }

    #[test]
    fn a_secret_may_come_from_the_file_its_file_variable_names() {
        use secrecy::ExposeSecret;
        let dir = std::env::temp_dir().join(format!("kiln-secret-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hmac = dir.join("hmac");
        std::fs::write(&hmac, "from-a-file\n").unwrap();
        let db = dir.join("db");
        std::fs::write(&db, "postgres://kiln:pw@db/kiln\r\n").unwrap();
        let base = [("KILN_ARTIFACTS", "file:///tmp/a")];
        let with = |extra: &[(&str, &str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            Settings::from_vars(vars(&all))
        };

        let s = with(&[
            ("KILN_DATABASE_URL_FILE", db.to_str().unwrap()),
            ("KILN_HMAC_SECRET_FILE", hmac.to_str().unwrap()),
        ])
        .unwrap();
        assert_eq!(s.database.url.expose_secret(), "postgres://kiln:pw@db/kiln");
        assert_eq!(s.api.hmac_secret.as_ref().unwrap().expose_secret(), "from-a-file");
        assert!(s.secret_values().iter().any(|v| v == "from-a-file"));

        let both = with(&[
            ("KILN_DATABASE_URL", "postgres://x"),
            ("KILN_DATABASE_URL_FILE", db.to_str().unwrap()),
        ]);
        assert_eq!(
            both.unwrap_err().to_string(),
            "KILN_DATABASE_URL and KILN_DATABASE_URL_FILE are both set: set one of them"
        );

        let missing = dir.join("absent");
        let err = with(&[
            ("KILN_DATABASE_URL", "postgres://x"),
            ("KILN_HMAC_SECRET_FILE", missing.to_str().unwrap()),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(&format!(
                "KILN_HMAC_SECRET_FILE: cannot read {}: ",
                missing.display()
            )),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
