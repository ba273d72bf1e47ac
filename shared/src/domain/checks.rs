//! The checks a build may ask for before its build script runs: a typecheck (`tsc`) and a lint
//! (the project's ESLint config), each off, reported (`warn`: the build deploys, with their
//! diagnostics) or enforced (`fail`: the build fails at step `check`).

use serde::{Deserialize, Serialize};

/// What a build does with one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckMode {
    #[default]
    Off,
    Warn,
    Fail,
}

impl CheckMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckMode::Off => "off",
            CheckMode::Warn => "warn",
            CheckMode::Fail => "fail",
        }
    }
}

/// A build's checks (`checks` of a build request; every one off by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checks {
    #[serde(default)]
    pub typecheck: CheckMode,
    #[serde(default)]
    pub lint: CheckMode,
}

/// Why a request's `checks` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChecksError(String);

impl Checks {
    /// Whether any check runs.
    pub fn any(&self) -> bool {
        self.typecheck != CheckMode::Off || self.lint != CheckMode::Off
    }

    /// A request's `checks` member, refused with a message naming what is wrong.
    pub fn parse(value: &serde_json::Value) -> Result<Self, ChecksError> {
        let object = value.as_object().ok_or_else(|| {
            ChecksError(
                "checks must be an object such as {\"typecheck\": \"fail\", \"lint\": \"warn\"}".into(),
            )
        })?;
        let mut checks = Checks::default();
        for (name, mode) in object {
            let slot = match name.as_str() {
                "typecheck" => &mut checks.typecheck,
                "lint" => &mut checks.lint,
                other => {
                    return Err(ChecksError(format!(
                        "checks.{other} is not a check Kiln runs; the checks are typecheck and lint"
                    )))
                }
            };
            *slot = match mode.as_str() {
                Some("off") => CheckMode::Off,
                Some("warn") => CheckMode::Warn,
                Some("fail") => CheckMode::Fail,
                _ => {
                    return Err(ChecksError(format!(
                        "checks.{name} must be \"off\", \"warn\" or \"fail\", not {mode}"
                    )))
                }
            };
        }
        Ok(checks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_parse_with_messages_that_say_what_is_wrong() {
        let c = Checks::parse(&json!({"typecheck": "fail"})).unwrap();
        assert_eq!((c.typecheck, c.lint), (CheckMode::Fail, CheckMode::Off));
        assert!(c.any());
        assert!(!Checks::parse(&json!({})).unwrap().any());
        let e = Checks::parse(&json!({"typecheck": "maybe"}))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "checks.typecheck must be \"off\", \"warn\" or \"fail\", not \"maybe\""
        );
        let e = Checks::parse(&json!({"tests": "fail"})).unwrap_err().to_string();
        assert!(e.contains("checks.tests is not a check"), "{e}");
        assert!(Checks::parse(&json!("fail")).is_err());
        // As stored: the same shape back.
        let back: Checks = serde_json::from_value(serde_json::to_value(c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
