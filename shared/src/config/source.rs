//! Where raw values come from: the environment first, then the optional TOML file
//! (`KILN_CONFIG`); and the error that names the variable whose value is missing or invalid.

use std::collections::HashMap;
use std::path::Path;

/// A setting that is missing or invalid, named by its variable (a binary prints it and exits).
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
    #[error("{var}_FILE: cannot read {path}: {reason}")]
    SecretFile {
        var: &'static str,
        path: String,
        reason: String,
    },
    #[error("{var} and {var}_FILE are both set: set one of them")]
    SecretTwice { var: &'static str },
}

/// The variables holding secrets. Each may instead be given as `<NAME>_FILE`, the path of a
/// file holding the value (Docker secrets, systemd's `LoadCredential=`), so the value itself is
/// in no environment and no unit file.
pub const SECRET_VARIABLES: [&str; 5] = [
    "KILN_DATABASE_URL",
    "KILN_REDIS_URL",
    "KILN_HMAC_SECRET",
    "KILN_API_TOKENS",
    "AWS_SECRET_ACCESS_KEY",
];

/// Reads raw values by variable name: the environment first, then the file.
pub(super) struct Source {
    pub(super) env: HashMap<String, String>,
    pub(super) file: HashMap<String, String>,
}

impl Source {
    /// Reads each secret given as `<NAME>_FILE` into `<NAME>` (one trailing newline dropped, as
    /// `echo` and editors leave one).
    pub(super) fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        for var in SECRET_VARIABLES {
            let Some(path) = self.get(&format!("{var}_FILE")) else {
                continue;
            };
            if self.get(var).is_some() {
                return Err(ConfigError::SecretTwice { var });
            }
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::SecretFile {
                var,
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let value = text.strip_suffix('\n').unwrap_or(&text);
            let value = value.strip_suffix('\r').unwrap_or(value);
            self.env.insert(var.to_owned(), value.to_owned());
        }
        Ok(())
    }

    pub(super) fn get(&self, var: &str) -> Option<String> {
        if let Some(v) = self.env.get(var) {
            return Some(v.clone()).filter(|v| !v.is_empty());
        }
        let key = var.trim_start_matches("KILN_").to_ascii_lowercase();
        self.file.get(&key).cloned().filter(|v| !v.is_empty())
    }

    pub(super) fn required(
        &self,
        (var, meaning): (&'static str, &'static str),
    ) -> Result<String, ConfigError> {
        self.get(var).ok_or(ConfigError::Missing { var, meaning })
    }

    pub(super) fn parsed<T: std::str::FromStr>(
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
    pub(super) fn switch(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
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

    pub(super) fn positive(&self, var: &'static str, default: u64) -> Result<u64, ConfigError> {
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

/// Reads the TOML file as variable names (lower case, without `KILN_`) to raw values.
pub(super) fn read_toml(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
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
