//! The dependency audit after install (`KILN_AUDIT`, `KILN_AUDIT_DB`).

use std::path::PathBuf;

use super::{ConfigError, Source};

/// What the audit does with what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditMode {
    /// No audit (the default: it needs an advisory database on disk).
    Off,
    /// Findings go to the build's log.
    Warn,
    /// Findings go to the log, and a critical one fails the build at step `audit`.
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    pub mode: AuditMode,
    /// A folder of OSV records (OSV's `npm/all.zip`, unpacked), read by every builder
    /// (`KILN_AUDIT_DB`; required when the audit is on).
    pub db: Option<PathBuf>,
}

impl AuditSettings {
    pub(super) fn load(src: &Source) -> Result<Self, ConfigError> {
        let mode = match src.get("KILN_AUDIT").map(|v| v.trim().to_ascii_lowercase()) {
            None => AuditMode::Off,
            Some(v) if v == "off" => AuditMode::Off,
            Some(v) if v == "warn" => AuditMode::Warn,
            Some(v) if v == "fail" => AuditMode::Fail,
            Some(v) => {
                return Err(ConfigError::Invalid {
                    var: "KILN_AUDIT",
                    reason: format!("expected off, warn or fail, got {v:?}"),
                })
            }
        };
        let db = src.get("KILN_AUDIT_DB").map(PathBuf::from);
        if mode != AuditMode::Off && db.is_none() {
            return Err(ConfigError::Missing {
                var: "KILN_AUDIT_DB",
                meaning: "the folder of OSV advisories the audit checks lockfiles against (KILN_AUDIT is on)",
            });
        }
        Ok(Self { mode, db })
    }
}
