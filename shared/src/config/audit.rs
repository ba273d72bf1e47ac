//! The dependency audit after install (`KILN_AUDIT`, `KILN_AUDIT_DB`) and the refresh of its
//! database by `kiln-builder maintain` (`KILN_AUDIT_SOURCE`, `KILN_AUDIT_MAX_MB`).

use std::path::PathBuf;

use super::source::{ConfigError, Source};

use super::definition::{section, Fallback, Kind, Variable, BUILDER};

section! {
    title: "Audit",
    intro: "The dependency audit after install, and the refresh of its advisory database by `kiln-builder maintain`.",
    AUDIT = Variable::new(
        "KILN_AUDIT",
        Kind::OneOf(&["off", "warn", "fail"]),
        Fallback::Value("off"),
        BUILDER,
        "the dependency audit after install",
    )
    .details(
        "`warn`: advisories go to the build log; `fail`: a critical advisory also fails the \
         build at step `audit`, naming it.",
    )
    .hint("fail");
    AUDIT_DB = Variable::new(
        "KILN_AUDIT_DB",
        Kind::Path,
        Fallback::Otherwise("none (required when the audit is on)"),
        BUILDER,
        "the folder of OSV records the audit checks lockfiles against",
    )
    .details("OSV's `npm/all.zip`, unpacked; read again when the folder changes.")
    .hint("/var/lib/kiln/osv/npm");
    AUDIT_SOURCE = Variable::new(
        "KILN_AUDIT_SOURCE",
        Kind::Format("an http(s) URL, or `off`"),
        Fallback::Value(OSV_NPM_EXPORT),
        BUILDER,
        "where `kiln-builder maintain` fetches a new export of the advisory database",
    )
    .details(
        "A zip of OSV records, fetched with a conditional GET (only when the audit is on); \
         `off`: the operator refreshes the folder some other way.",
    );
    AUDIT_MAX_MB = Variable::new(
        "KILN_AUDIT_MAX_MB",
        Kind::Positive,
        Fallback::Value("512"),
        BUILDER,
        "the largest export `kiln-builder maintain` downloads, in MB (it may unpack to 16 times that)",
    );
}

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
    /// Where `kiln-builder maintain` fetches a new export of the database from
    /// (`KILN_AUDIT_SOURCE`: a URL of a zip of OSV records; default OSV's npm export; `off`:
    /// the operator refreshes the folder some other way). Only when the audit is on.
    pub source: Option<String>,
    /// The largest export it downloads (`KILN_AUDIT_MAX_MB`, default 512); the records may
    /// unpack to 16 times that.
    pub max_bytes: u64,
}

/// OSV's export of every npm advisory.
pub const OSV_NPM_EXPORT: &str = "https://osv-vulnerabilities.storage.googleapis.com/npm/all.zip";

impl AuditSettings {
    pub(super) fn load(src: &Source) -> Result<Self, ConfigError> {
        let mode = match src.value(&AUDIT).map(|v| v.trim().to_ascii_lowercase()) {
            None => AuditMode::Off,
            Some(v) if v == "off" => AuditMode::Off,
            Some(v) if v == "warn" => AuditMode::Warn,
            Some(v) if v == "fail" => AuditMode::Fail,
            Some(v) => {
                return Err(ConfigError::Invalid {
                    var: AUDIT.name,
                    reason: format!("expected off, warn or fail, got {v:?}"),
                })
            }
        };
        let db = src.get(&AUDIT_DB).map(PathBuf::from);
        if mode != AuditMode::Off && db.is_none() {
            return Err(ConfigError::Missing {
                var: AUDIT_DB.name,
                meaning: "the folder of OSV advisories the audit checks lockfiles against (KILN_AUDIT is on)",
            });
        }
        let source = match src.value(&AUDIT_SOURCE).map(|v| v.trim().to_owned()) {
            _ if mode == AuditMode::Off => None,
            None => None,
            Some(v) if v.eq_ignore_ascii_case("off") => None,
            Some(v) => match url::Url::parse(&v) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Some(v),
                _ => {
                    return Err(ConfigError::Invalid {
                        var: AUDIT_SOURCE.name,
                        reason: format!("expected an http(s) URL of a zip of OSV records, or off; got {v:?}"),
                    })
                }
            },
        };
        let max_bytes = src.positive(&AUDIT_MAX_MB)? << 20;
        Ok(Self {
            mode,
            db,
            source,
            max_bytes,
        })
    }
}
