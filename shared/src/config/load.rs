//! Loading: every variable read through its definition from its [`Source`] into its setting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use super::source::{read_toml, ConfigError, Source};
use super::{
    api, builder, connections, fleet, general, preview, storage, unknown, variables, webhooks, AuditSettings,
    LimitSettings, MaintenanceSettings, SandboxSettings, Settings,
};

impl Settings {
    /// Loads from the process environment (and `KILN_CONFIG`, when set). An unknown `KILN_*`
    /// variable or file key is a warning naming the closest known one.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Loads from the given variables (and the `KILN_CONFIG` file they name, if any).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = vars.into_iter().collect();
        unknown::warn(
            "variable",
            unknown::unknown_variables(env.keys().map(String::as_str)),
        );
        let file = match env.get(general::CONFIG.name).filter(|p| !p.is_empty()) {
            Some(path) => read_toml(Path::new(path))?,
            None => HashMap::new(),
        };
        unknown::warn(
            "KILN_CONFIG key",
            unknown::unknown_keys(file.keys().map(String::as_str)),
        );
        let mut source = Source::new(env, file);
        source.read_secret_files(variables::secret_variables())?;
        Self::load(&source)
    }

    pub(super) fn load(src: &Source) -> Result<Self, ConfigError> {
        use api::*;
        use builder::*;
        use connections::*;
        use fleet::*;
        use preview::*;
        use storage::*;
        use webhooks::*;

        let database_url = src.required(&DATABASE_URL)?;
        let artifacts_raw = src.required(&ARTIFACTS)?;
        let artifacts = ArtifactsLocation::parse(&artifacts_raw).map_err(|reason| ConfigError::Invalid {
            var: ARTIFACTS.name,
            reason,
        })?;
        let data_dir = PathBuf::from(src.required(&general::DATA_DIR)?);
        let work_dir = src
            .get(&WORK_DIR)
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("work"));
        // Inside the work folder by default: a sandboxed install can then hard-link from it
        // (see the builder's sandbox).
        let pnpm_store = src
            .get(&PNPM_STORE)
            .map(PathBuf::from)
            .unwrap_or_else(|| work_dir.join("pnpm-store"));
        let preview_scheme = src.required(&PREVIEW_SCHEME)?;
        if preview_scheme != "http" && preview_scheme != "https" {
            return Err(ConfigError::Invalid {
                var: PREVIEW_SCHEME.name,
                reason: format!("expected http or https, got {preview_scheme:?}"),
            });
        }
        let preview_public_port = match src.get(&PREVIEW_PUBLIC_PORT) {
            None => None,
            Some(raw) => Some(raw.parse::<u16>().map_err(|_| ConfigError::Invalid {
                var: PREVIEW_PUBLIC_PORT.name,
                reason: format!("expected a port number, got {raw:?}"),
            })?),
        };
        let redis_prefix = src.required(&REDIS_PREFIX)?;
        if redis_prefix.contains(char::is_whitespace) {
            return Err(ConfigError::Invalid {
                var: REDIS_PREFIX.name,
                reason: "must not contain whitespace".into(),
            });
        }
        let api_tokens = src
            .get(&API_TOKENS)
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
                url: src.required(&REDIS_URL)?.into(),
                prefix: redis_prefix,
            },
            storage: StorageSettings {
                artifacts,
                s3: S3Settings {
                    endpoint: src.get(&S3_ENDPOINT),
                    region: src.required(&S3_REGION)?,
                    access_key_id: src.get(&AWS_ACCESS_KEY_ID),
                    secret_access_key: src.get(&AWS_SECRET_ACCESS_KEY).map(Into::into),
                },
            },
            api: ApiSettings {
                addr: src.required(&API_ADDR)?,
                hmac_secret: src.get(&HMAC_SECRET).map(Into::into),
                tokens: api_tokens,
                max_body_bytes: (src.positive(&MAX_BODY_MB)? * mb) as usize,
                max_files: src.positive(&MAX_FILES)? as usize,
                max_file_bytes: (src.positive(&MAX_FILE_MB)? * mb) as usize,
            },
            preview: PreviewSettings {
                addr: src.required(&PREVIEW_ADDR)?,
                domain: src
                    .required(&PREVIEW_DOMAIN)?
                    .trim_matches('.')
                    .to_ascii_lowercase(),
                scheme: preview_scheme,
                public_port: preview_public_port,
            },
            builder: BuilderSettings {
                id: src.get(&BUILDER_ID),
                concurrency: src.positive(&BUILDER_CONCURRENCY)? as usize,
                work_dir,
                pnpm_store,
                build_timeout: Duration::from_secs(src.positive(&BUILD_TIMEOUT_SECS)?),
                max_output_bytes: src.positive(&MAX_OUTPUT_MB)? * mb,
                max_output_files: src.positive(&MAX_OUTPUT_FILES)? as usize,
                max_log_bytes: (src.positive(&MAX_LOG_KB)? * 1024) as usize,
                generator_cmd: src.get(&GENERATOR_CMD),
                metrics_addr: src
                    .value(&METRICS_ADDR)
                    .filter(|addr| !addr.eq_ignore_ascii_case("off")),
                build_events: src.switch(&BUILD_EVENTS)?,
                dep_cache_bytes: match src.get(&DEP_CACHE_MB) {
                    Some(v) if v.trim().eq_ignore_ascii_case("off") => None,
                    _ => Some(src.positive(&DEP_CACHE_MB)? * mb),
                },
            },
            data_dir,
            fleet: FleetSettings {
                lease: Duration::from_secs(src.positive(&LEASE_SECS)?),
                max_attempts: src.positive(&MAX_ATTEMPTS)?.min(1000) as u32,
                cancel_grace: Duration::from_secs(src.positive(&CANCEL_GRACE_SECS)?),
                drain: Duration::from_secs(src.positive(&DRAIN_SECS)?),
                reconcile_every: Duration::from_secs(src.positive(&RECONCILE_SECS)?),
                max_running_per_user: match src.get(&MAX_RUNNING_PER_USER) {
                    None => None,
                    Some(_) => Some(src.positive(&MAX_RUNNING_PER_USER)?.min(1_000_000) as u32),
                },
                affinity: match src.value(&AFFINITY_MS) {
                    Some(v) if v.trim().eq_ignore_ascii_case("off") || v.trim() == "0" => None,
                    _ => Some(Duration::from_millis(src.positive(&AFFINITY_MS)?.min(3_600_000))),
                },
            },
            webhooks: WebhookSettings {
                deliver: src.switch(&WEBHOOK_DELIVERY)?,
                retry_unit: Duration::from_millis(src.positive(&WEBHOOK_RETRY_UNIT_MS)?),
                timeout: Duration::from_secs(src.positive(&WEBHOOK_TIMEOUT_SECS)?),
                concurrency: src.positive(&WEBHOOK_CONCURRENCY)? as usize,
                poll: Duration::from_millis(src.positive(&WEBHOOK_POLL_MS)?),
            },
            sandbox: SandboxSettings::load(src)?,
            audit: AuditSettings::load(src)?,
            maintenance: MaintenanceSettings::load(src)?,
            packages: super::PackageCacheSettings::load(src)?,
            limits: LimitSettings::load(src)?,
            encryption: super::EncryptionSettings::load(src)?,
        })
    }

    /// The API also needs the HMAC secret.
    pub fn require_api(&self) -> Result<(), ConfigError> {
        if self.api.hmac_secret.is_none() {
            return Err(ConfigError::Missing {
                var: api::HMAC_SECRET.name,
                meaning: api::HMAC_SECRET.help,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{variables, ArtifactsLocation, Egress};

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
    fn affinity_waits_two_seconds_unless_turned_off() {
        let base = [
            ("KILN_DATABASE_URL", "postgres://x"),
            ("KILN_ARTIFACTS", "file:///tmp/a"),
        ];
        let with = |value: &'static str| {
            Settings::from_vars(vars(&[base[0], base[1], ("KILN_AFFINITY_MS", value)]))
                .map(|s| s.fleet.affinity)
        };
        let s = Settings::from_vars(vars(&base)).unwrap();
        assert_eq!(s.fleet.affinity, Some(Duration::from_millis(2000)));
        assert_eq!(with("350").unwrap(), Some(Duration::from_millis(350)));
        assert_eq!(with("off").unwrap(), None);
        assert_eq!(with("OFF").unwrap(), None);
        assert_eq!(with("0").unwrap(), None);
        let err = with("soon").unwrap_err().to_string();
        assert!(err.starts_with("KILN_AFFINITY_MS is invalid"), "{err}");
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

    #[test]
    fn loading_reads_every_defined_variable_and_its_defaults_are_the_settings_defaults() {
        let src = Source::new(
            vars(&[
                ("KILN_DATABASE_URL", "postgres://x"),
                ("KILN_ARTIFACTS", "file:///tmp/a"),
            ])
            .into_iter()
            .collect(),
            HashMap::new(),
        );
        let s = Settings::load(&src).unwrap();
        let read = src.read();
        // Read before the settings (`KILN_CONFIG`) or by the logger (`telemetry::init`).
        let elsewhere = ["KILN_CONFIG", "KILN_LOG_FORMAT", "RUST_LOG"];
        let unread: Vec<&str> = variables()
            .map(|v| v.name)
            .filter(|n| !read.contains(n) && !elsewhere.contains(n))
            .collect();
        assert!(unread.is_empty(), "defined but never read: {unread:?}");
        assert_eq!(
            s.sandbox.allow_build_scripts,
            crate::config::sandbox::DEFAULT_BUILD_SCRIPTS
        );
        assert_eq!(s.sandbox.egress, Egress::default());
        assert_eq!(s.limits, LimitSettings::default());
        assert_eq!(s.maintenance, MaintenanceSettings::default());
        assert_eq!(s.builder.metrics_addr.as_deref(), Some("127.0.0.1:9465"));
        assert_eq!(s.data_dir, PathBuf::from(".kiln"));
        assert_eq!(s.builder.pnpm_store, PathBuf::from(".kiln/work/pnpm-store"));
    }
}
