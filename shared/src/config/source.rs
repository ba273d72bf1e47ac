//! Where raw values come from: the environment first, then the optional TOML file
//! (`KILN_CONFIG`), then the variable's default; and the error that names the variable whose
//! value is missing or invalid.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::definition::{Kind, Variable};

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

/// Reads raw values through their definitions: the environment first, then the file, then
/// the definition's default. It remembers which variables were read (a test checks every
/// defined variable is).
pub(super) struct Source {
    env: HashMap<String, String>,
    file: HashMap<String, String>,
    read: RefCell<BTreeSet<&'static str>>,
}

impl Source {
    pub(super) fn new(env: HashMap<String, String>, file: HashMap<String, String>) -> Self {
        Self {
            env,
            file,
            read: RefCell::default(),
        }
    }

    /// The variables read so far.
    #[cfg(test)]
    pub(super) fn read(&self) -> BTreeSet<&'static str> {
        self.read.borrow().clone()
    }

    /// Reads each of `secrets` given as `<NAME>_FILE` into `<NAME>` (one trailing newline
    /// dropped, as `echo` and editors leave one).
    pub(super) fn read_secret_files(
        &mut self,
        secrets: impl Iterator<Item = &'static str>,
    ) -> Result<(), ConfigError> {
        for var in secrets {
            let Some(path) = self.raw(&format!("{var}_FILE")) else {
                continue;
            };
            if self.raw(var).is_some() {
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

    /// A value by name, set in the environment or the file (empty counts as unset).
    fn raw(&self, name: &str) -> Option<String> {
        if let Some(v) = self.env.get(name) {
            return Some(v.clone()).filter(|v| !v.is_empty());
        }
        let key = name.trim_start_matches("KILN_").to_ascii_lowercase();
        self.file.get(&key).cloned().filter(|v| !v.is_empty())
    }

    /// The value set for `var`, if any (its default not applied).
    pub(super) fn get(&self, var: &Variable) -> Option<String> {
        self.read.borrow_mut().insert(var.name);
        self.raw(var.name)
    }

    /// The value set for `var`, else its default.
    pub(super) fn value(&self, var: &Variable) -> Option<String> {
        self.get(var).or_else(|| var.default_value().map(str::to_owned))
    }

    pub(super) fn required(&self, var: &Variable) -> Result<String, ConfigError> {
        self.value(var).ok_or(ConfigError::Missing {
            var: var.name,
            meaning: var.help,
        })
    }

    pub(super) fn parsed<T: std::str::FromStr>(
        &self,
        var: &Variable,
        expected: &str,
    ) -> Result<T, ConfigError> {
        debug_assert_eq!(var.kind, Kind::Count, "{}", var.name);
        let raw = self.required(var)?;
        raw.trim().parse().map_err(|_| ConfigError::Invalid {
            var: var.name,
            reason: format!("expected {expected}, got {raw:?}"),
        })
    }

    /// `on`/`off` (also `true`/`false`, `1`/`0`).
    pub(super) fn switch(&self, var: &Variable) -> Result<bool, ConfigError> {
        debug_assert_eq!(var.kind, Kind::Switch, "{}", var.name);
        let v = self.required(var)?.trim().to_ascii_lowercase();
        match v.as_str() {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            _ => Err(ConfigError::Invalid {
                var: var.name,
                reason: format!("expected on or off, got {v:?}"),
            }),
        }
    }

    pub(super) fn positive(&self, var: &Variable) -> Result<u64, ConfigError> {
        debug_assert!(
            matches!(var.kind, Kind::Positive | Kind::PositiveOrOff),
            "{}",
            var.name
        );
        let raw = self.required(var)?;
        let v: u64 = raw.trim().parse().map_err(|_| ConfigError::Invalid {
            var: var.name,
            reason: format!("expected a positive integer, got {raw:?}"),
        })?;
        if v == 0 {
            return Err(ConfigError::Invalid {
                var: var.name,
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
