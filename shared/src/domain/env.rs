//! A project's environment: names and values a build's own steps (build and checks) see.
//! Names are checked here against what Kiln and the sandbox own, and a secret against the
//! prefixes bundlers inline into the published code.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// The longest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;
/// The most values a project (or one build request) has.
pub const MAX_VARS: usize = 200;

/// Names the sandbox sets for every step, which a project may not replace.
const OWNED: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "TMP",
    "TEMP",
    "CI",
    "LANG",
    "LC_ALL",
    "NO_COLOR",
    "USER",
    "LOGNAME",
    "SHELL",
    "PWD",
    "NODE_OPTIONS",
    "NODE_PATH",
    "NODE_EXTRA_CA_CERTS",
    "NODE_TLS_REJECT_UNAUTHORIZED",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
];

/// Prefixes of names Kiln, the package manager or the dynamic loader read.
const OWNED_PREFIXES: &[&str] = &[
    "KILN_",
    "NPM_CONFIG_",
    "PNPM_",
    "COREPACK_",
    "LD_",
    "XDG_",
    "BASH_FUNC_",
];

/// Prefixes whose values bundlers inline into the code they publish: a secret under one of
/// these names would be served to every visitor.
pub const PUBLIC_PREFIXES: &[&str] = &[
    "VITE_",
    "NEXT_PUBLIC_",
    "PUBLIC_",
    "NUXT_PUBLIC_",
    "REACT_APP_",
    "GATSBY_",
];

/// Why a name or a value was refused: the message names it and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EnvError(String);

/// A valid environment name: `[A-Z_][A-Z0-9_]*`, at most [`MAX_NAME_BYTES`], not one Kiln or
/// the sandbox owns.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EnvName(String);

impl EnvName {
    pub fn parse(raw: &str) -> Result<Self, EnvError> {
        let shown: String = raw.chars().take(60).collect();
        if raw.is_empty() {
            return Err(EnvError("an environment name is empty".into()));
        }
        if raw.len() > MAX_NAME_BYTES {
            return Err(EnvError(format!(
                "environment name {shown:?}… is {} bytes; names are at most {MAX_NAME_BYTES}",
                raw.len()
            )));
        }
        let mut chars = raw.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_uppercase() || c == '_');
        if !first_ok || !chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
            return Err(EnvError(format!(
                "environment name {shown:?} must match [A-Z_][A-Z0-9_]* (upper-case letters, digits and _, not starting with a digit)"
            )));
        }
        if OWNED.contains(&raw) {
            return Err(EnvError(format!(
                "environment name {raw} is set by Kiln's sandbox for every step and cannot be replaced"
            )));
        }
        if let Some(prefix) = OWNED_PREFIXES.iter().find(|p| raw.starts_with(*p)) {
            return Err(EnvError(format!(
                "environment name {raw} starts with {prefix}, which Kiln, the package manager or the loader read; choose another name"
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The public prefix this name starts with, if a bundler would publish its value.
    pub fn published_by(&self) -> Option<&'static str> {
        PUBLIC_PREFIXES.iter().copied().find(|p| self.0.starts_with(p))
    }

    /// Refuses a secret under a name whose value would be published.
    pub fn check_secret(&self) -> Result<(), EnvError> {
        match self.published_by() {
            Some(prefix) => Err(EnvError(format!(
                "{} cannot be a secret: bundlers inline {prefix}* values into the code they publish, so its value would be served to every visitor; store it as a plain value or choose a name without {prefix}",
                self.0
            ))),
            None => Ok(()),
        }
    }
}

impl fmt::Display for EnvName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a value: at most [`MAX_VALUE_BYTES`], no NUL (an environment cannot hold one).
pub fn check_value(name: &EnvName, value: &str) -> Result<(), EnvError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(EnvError(format!(
            "the value of {name} is {} bytes; values are at most {MAX_VALUE_BYTES} bytes",
            value.len()
        )));
    }
    if value.contains('\0') {
        return Err(EnvError(format!("the value of {name} contains a NUL byte")));
    }
    Ok(())
}

/// A build request's one-off plain values (`env`), checked.
pub fn parse_request_env(value: &serde_json::Value) -> Result<BTreeMap<EnvName, String>, EnvError> {
    let object = value.as_object().ok_or_else(|| {
        EnvError(
            "env must be an object of names to string values, such as {\"API_URL\": \"https://…\"}".into(),
        )
    })?;
    if object.len() > MAX_VARS {
        return Err(EnvError(format!(
            "env has {} values; a build request has at most {MAX_VARS}",
            object.len()
        )));
    }
    let mut out = BTreeMap::new();
    for (name, v) in object {
        let name = EnvName::parse(name).map_err(|e| EnvError(format!("env: {e}")))?;
        let v = v
            .as_str()
            .ok_or_else(|| EnvError(format!("env.{name} must be a string, not {v}")))?;
        check_value(&name, v).map_err(|e| EnvError(format!("env: {e}")))?;
        out.insert(name, v.to_owned());
    }
    Ok(out)
}

/// One name of the environment a version was built with: whether it was a secret and a keyed
/// hash of its value (comparable between versions of the project, revealing nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvEntry {
    pub name: String,
    pub secret: bool,
    pub hash: String,
}

/// The names whose presence or value differs between two snapshots, sorted.
pub fn changed_names(now: &[EnvEntry], before: &[EnvEntry]) -> Vec<String> {
    let index = |s: &[EnvEntry]| -> BTreeMap<String, String> {
        s.iter().map(|e| (e.name.clone(), e.hash.clone())).collect()
    };
    let (a, b) = (index(now), index(before));
    let mut names: Vec<String> = a
        .iter()
        .filter(|(n, h)| b.get(*n) != Some(*h))
        .map(|(n, _)| n.clone())
        .chain(b.keys().filter(|n| !a.contains_key(*n)).cloned())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules_and_say_which() {
        assert!(EnvName::parse("VITE_GREETING").is_ok());
        assert!(EnvName::parse("_X1").is_ok());
        for (raw, says) in [
            ("", "empty"),
            ("lower", "must match"),
            ("1ABC", "must match"),
            ("A-B", "must match"),
            ("PATH", "set by Kiln's sandbox"),
            ("NODE_OPTIONS", "set by Kiln's sandbox"),
            ("KILN_SECRETS_KEY", "starts with KILN_"),
            ("NPM_CONFIG_REGISTRY", "starts with NPM_CONFIG_"),
            ("LD_PRELOAD", "starts with LD_"),
        ] {
            let e = EnvName::parse(raw).unwrap_err().to_string();
            assert!(e.contains(says), "{raw}: {e}");
        }
        assert!(EnvName::parse(&"A".repeat(129))
            .unwrap_err()
            .to_string()
            .contains("at most 128"));
        let e = EnvName::parse("NEXT_PUBLIC_KEY")
            .unwrap()
            .check_secret()
            .unwrap_err()
            .to_string();
        assert!(e.contains("would be served to every visitor"), "{e}");
        assert!(EnvName::parse("STRIPE_KEY").unwrap().check_secret().is_ok());
    }

    #[test]
    fn request_env_is_checked_and_changes_are_named() {
        let env = parse_request_env(&serde_json::json!({"A": "1", "B": "2"})).unwrap();
        assert_eq!(env.len(), 2);
        for (value, says) in [
            (serde_json::json!({"A": 1}), "env.A must be a string"),
            (serde_json::json!({"path": "x"}), "env: environment name"),
            (serde_json::json!(["A"]), "env must be an object"),
            (
                serde_json::json!({"A": "x".repeat(MAX_VALUE_BYTES + 1)}),
                "at most 32768",
            ),
        ] {
            let e = parse_request_env(&value).unwrap_err().to_string();
            assert!(e.contains(says), "{value}: {e}");
        }
        let e = |n: &str, h: &str| EnvEntry {
            name: n.into(),
            secret: false,
            hash: h.into(),
        };
        let changed = changed_names(
            &[e("A", "1"), e("B", "2"), e("C", "3")],
            &[e("A", "1"), e("B", "x"), e("D", "4")],
        );
        assert_eq!(changed, vec!["B", "C", "D"]);
    }
}
