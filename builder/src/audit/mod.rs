//! The dependency audit (`KILN_AUDIT=off|warn|fail`): after install, the packages of the
//! project's lockfile are checked against an advisory database on disk (`KILN_AUDIT_DB`: a
//! folder of OSV records, such as OSV's `npm/all.zip` unpacked), so it works without reaching
//! any registry's audit endpoint. `warn` writes the findings to the build's log; `fail` also
//! fails the build at step `audit` when one is critical, naming them.
//!
//! The database is read once and read again when its folder changes (a refresh that unpacks
//! a new export and renames it into place: [`refresh`], run by `kiln-builder maintain`); if
//! it cannot be read again, the one read before keeps serving.

pub mod lockfile;
pub mod osv;
pub mod refresh;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use self::lockfile::Package;
use self::osv::{Advisory, Severity};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the advisory database {path} cannot be read: {reason}")]
    Database { path: PathBuf, reason: String },
}

/// The advisories of a database folder, by package name.
#[derive(Debug, Default)]
pub struct Advisories {
    by_package: HashMap<String, Vec<Advisory>>,
    /// Records read, and records skipped as unreadable.
    pub records: usize,
    pub skipped: usize,
}

impl Advisories {
    /// Reads every `*.json` under `dir` (one OSV record each).
    pub fn load(dir: &Path) -> Result<Self, AuditError> {
        let err = |reason: String| AuditError::Database {
            path: dir.to_owned(),
            reason,
        };
        if !dir.is_dir() {
            return Err(err("not a folder".into()));
        }
        let mut db = Advisories::default();
        for entry in walkdir::WalkDir::new(dir).follow_links(false) {
            let entry = entry.map_err(|e| err(e.to_string()))?;
            let is_record =
                entry.file_type().is_file() && entry.path().extension().is_some_and(|e| e == "json");
            if !is_record {
                continue;
            }
            let parsed = std::fs::read(entry.path())
                .map_err(|e| e.to_string())
                .and_then(|raw| osv::parse(&raw).map_err(|e| e.to_string()));
            match parsed {
                Ok(affected) => {
                    db.records += 1;
                    for (name, advisory) in affected {
                        db.by_package.entry(name).or_default().push(advisory);
                    }
                }
                Err(e) => {
                    db.skipped += 1;
                    tracing::debug!(file = %entry.path().display(), error = %e, "advisory skipped");
                }
            }
        }
        Ok(db)
    }

    /// The advisories affecting `packages`, most severe first.
    pub fn check<'a>(&'a self, packages: impl IntoIterator<Item = &'a Package>) -> Vec<Finding<'a>> {
        let mut found: Vec<Finding> = packages
            .into_iter()
            .flat_map(|package| {
                self.by_package
                    .get(&package.name)
                    .into_iter()
                    .flatten()
                    .filter(|a| a.affects(&package.version))
                    .map(move |advisory| Finding { package, advisory })
            })
            .collect();
        found.sort_by(|a, b| {
            b.advisory
                .severity
                .cmp(&a.advisory.severity)
                .then_with(|| a.package.cmp(b.package))
                .then_with(|| a.advisory.id.cmp(&b.advisory.id))
        });
        found
    }
}

/// One affected package.
#[derive(Debug)]
pub struct Finding<'a> {
    pub package: &'a Package,
    pub advisory: &'a Advisory,
}

impl std::fmt::Display for Finding<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = self.advisory;
        write!(
            f,
            "{} ({}) {}@{}: {}",
            a.id,
            a.severity.as_str(),
            self.package.name,
            self.package.version,
            a.summary
        )?;
        match &a.fixed {
            Some(fixed) => write!(f, "; fixed in {fixed}"),
            None => write!(f, "; no fixed version"),
        }
    }
}

/// What one audit found.
#[derive(Debug)]
pub struct Report {
    /// Log lines: a summary, then one line per finding.
    pub lines: Vec<String>,
    /// The critical findings (a `fail` audit fails the build on them).
    pub critical: Vec<String>,
}

/// The database, kept in memory and read again when its folder changes.
#[derive(Debug)]
pub struct Auditor {
    dir: PathBuf,
    loaded: Mutex<Option<(Option<SystemTime>, Arc<Advisories>)>>,
}

impl Auditor {
    /// An auditor over `dir`, read now so a builder with a missing or unreadable database
    /// refuses to start.
    pub fn open(dir: &Path) -> Result<Self, AuditError> {
        let me = Self {
            dir: dir.to_owned(),
            loaded: Mutex::new(None),
        };
        let db = me.current()?;
        tracing::info!(
            dir = %dir.display(),
            records = db.records,
            skipped = db.skipped,
            packages = db.by_package.len(),
            "advisory database loaded"
        );
        Ok(me)
    }

    fn current(&self) -> Result<Arc<Advisories>, AuditError> {
        let modified = std::fs::metadata(&self.dir).and_then(|m| m.modified()).ok();
        let mut loaded = self.loaded.lock().expect("not poisoned");
        if let Some((at, db)) = loaded.as_ref() {
            if *at == modified {
                return Ok(db.clone());
            }
        }
        match Advisories::load(&self.dir) {
            Ok(db) => {
                let db = Arc::new(db);
                *loaded = Some((modified, db.clone()));
                Ok(db)
            }
            // A refresh went wrong (or is half-way): the database read before still serves.
            Err(e) => match loaded.as_ref() {
                Some((_, db)) => {
                    tracing::warn!(error = %e, "the advisory database cannot be read again: the one read before is used");
                    Ok(db.clone())
                }
                None => Err(e),
            },
        }
    }

    /// Audits a lockfile's text (blocking: call it off the async workers).
    pub fn audit(&self, lockfile: &str) -> Result<Report, AuditError> {
        let db = self.current()?;
        let (packages, unreadable) = match lockfile::read(lockfile) {
            Ok(packages) => (packages, None),
            Err(e) => (Default::default(), Some(e)),
        };
        let findings = db.check(&packages);
        let count = |s: Severity| findings.iter().filter(|f| f.advisory.severity == s).count();
        let mut lines = vec![format!(
            "[kiln] audit: {} packages checked against {} advisories: {} critical, {} high, {} moderate, {} low, {} unrated",
            packages.len(),
            db.records,
            count(Severity::Critical),
            count(Severity::High),
            count(Severity::Moderate),
            count(Severity::Low),
            count(Severity::Unknown),
        )];
        if let Some(e) = unreadable {
            lines.push(format!(
                "[kiln] audit: pnpm-lock.yaml is not YAML ({e}): its packages were not checked"
            ));
        }
        lines.extend(findings.iter().map(|f| format!("[kiln] audit: {f}")));
        let critical = findings
            .iter()
            .filter(|f| f.advisory.severity == Severity::Critical)
            .map(ToString::to_string)
            .collect();
        Ok(Report { lines, critical })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, json: &str) {
        std::fs::write(dir.join(name), json).unwrap();
    }

    #[test]
    fn a_lockfile_is_checked_against_the_folder_and_a_refresh_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "GHSA-1.json",
            r#"{"id": "GHSA-1", "summary": "Prototype pollution", "database_specific": {"severity": "CRITICAL"},
               "affected": [{"package": {"ecosystem": "npm", "name": "lodash"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]}]}"#,
        );
        write(dir.path(), "broken.json", "{");
        write(dir.path(), "notes.txt", "not a record");
        let auditor = Auditor::open(dir.path()).unwrap();
        let lock = "lockfileVersion: '9.0'\npackages:\n  lodash@4.17.20:\n    resolution: {integrity: x}\n  is-number@7.0.0:\n    resolution: {integrity: y}\n";
        let report = auditor.audit(lock).unwrap();
        assert_eq!(
            report.lines[0],
            "[kiln] audit: 2 packages checked against 1 advisories: 1 critical, 0 high, 0 moderate, 0 low, 0 unrated"
        );
        assert_eq!(
            report.critical,
            ["GHSA-1 (critical) lodash@4.17.20: Prototype pollution; fixed in 4.17.21"]
        );

        // A refresh adds a record: the next audit sees it.
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(
            dir.path(),
            "GHSA-2.json",
            r#"{"id": "GHSA-2", "summary": "ReDoS", "database_specific": {"severity": "MODERATE"},
               "affected": [{"package": {"ecosystem": "npm", "name": "is-number"}, "versions": ["7.0.0"]}]}"#,
        );
        let report = auditor.audit(lock).unwrap();
        assert_eq!(report.lines.len(), 3, "{:?}", report.lines);
        assert!(report.lines[2].contains("GHSA-2 (moderate) is-number@7.0.0: ReDoS; no fixed version"));
        assert_eq!(report.critical.len(), 1);
    }

    #[test]
    fn a_missing_database_is_an_error_that_names_it() {
        let err = Auditor::open(Path::new("/nonexistent/osv")).err().unwrap();
        assert_eq!(
            err.to_string(),
            "the advisory database /nonexistent/osv cannot be read: not a folder"
        );
    }
}
