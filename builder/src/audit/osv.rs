//! Advisories in the OSV format (<https://ossf.github.io/osv-schema/>), as OSV's export of the
//! npm ecosystem holds them (one JSON file per advisory): which versions of which npm
//! packages each affects, and how severe it is.

use serde::Deserialize;

/// How bad an advisory is. GitHub's advisories carry it (`database_specific.severity`); OSV's
/// malicious-package reports (`MAL-…`) are critical by nature; anything else is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Unknown,
    Low,
    Moderate,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Low => "low",
            Severity::Moderate => "moderate",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One advisory's effect on one package.
#[derive(Debug, Clone)]
pub struct Advisory {
    pub id: String,
    pub summary: String,
    pub severity: Severity,
    /// Each range: events in order (`introduced`, `fixed`, `last_affected`).
    ranges: Vec<Vec<Event>>,
    /// Versions named one by one.
    versions: Vec<String>,
    /// The first `fixed` version, for the message.
    pub fixed: Option<String>,
}

#[derive(Debug, Clone)]
enum Event {
    Introduced(semver::Version),
    Fixed(semver::Version),
    LastAffected(semver::Version),
}

impl Event {
    fn version(&self) -> &semver::Version {
        match self {
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) => v,
        }
    }
}

#[derive(Deserialize)]
struct Record {
    id: String,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
    #[serde(default)]
    affected: Vec<Affected>,
    #[serde(default)]
    database_specific: Option<DatabaseSpecific>,
}

#[derive(Deserialize)]
struct DatabaseSpecific {
    #[serde(default)]
    severity: Option<String>,
}

#[derive(Deserialize)]
struct Affected {
    package: Option<PackageRef>,
    #[serde(default)]
    ranges: Vec<Range>,
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Deserialize)]
struct PackageRef {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct Range {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// The npm packages one OSV record affects, each with its advisory; a withdrawn record or
/// one about another ecosystem gives none.
pub fn parse(json: &[u8]) -> Result<Vec<(String, Advisory)>, serde_json::Error> {
    let record: Record = serde_json::from_slice(json)?;
    if record.withdrawn.is_some() {
        return Ok(Vec::new());
    }
    let severity = match record
        .database_specific
        .and_then(|d| d.severity)
        .map(|s| s.to_ascii_uppercase())
        .as_deref()
    {
        Some("CRITICAL") => Severity::Critical,
        Some("HIGH") => Severity::High,
        Some("MODERATE" | "MEDIUM") => Severity::Moderate,
        Some("LOW") => Severity::Low,
        _ if record.id.starts_with("MAL-") => Severity::Critical,
        _ => Severity::Unknown,
    };
    let summary = record
        .summary
        .or(record.details)
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect::<String>();
    let mut out = Vec::new();
    for affected in record.affected {
        let Some(package) = affected.package.filter(|p| p.ecosystem == "npm") else {
            continue;
        };
        let mut fixed = None;
        let ranges: Vec<Vec<Event>> = affected
            .ranges
            .iter()
            .filter(|r| r.kind == "SEMVER" || r.kind == "ECOSYSTEM")
            .map(|r| {
                let mut events: Vec<Event> = r.events.iter().filter_map(event).collect();
                events.sort_by(|a, b| a.version().cmp(b.version()));
                for e in &events {
                    if let (Event::Fixed(v), None) = (e, &fixed) {
                        fixed = Some(v.to_string());
                    }
                }
                events
            })
            .collect();
        out.push((
            package.name,
            Advisory {
                id: record.id.clone(),
                summary: summary.clone(),
                severity,
                ranges,
                versions: affected.versions,
                fixed,
            },
        ));
    }
    Ok(out)
}

fn event(map: &serde_json::Map<String, serde_json::Value>) -> Option<Event> {
    let (kind, value) = map.iter().next()?;
    let raw = value.as_str()?;
    let version = if raw == "0" {
        semver::Version::new(0, 0, 0)
    } else {
        semver::Version::parse(raw).ok()?
    };
    match kind.as_str() {
        "introduced" => Some(Event::Introduced(version)),
        "fixed" => Some(Event::Fixed(version)),
        "last_affected" => Some(Event::LastAffected(version)),
        _ => None,
    }
}

impl Advisory {
    /// Whether `version` of the package is affected (OSV's evaluation: walking a range's
    /// events in version order, `introduced` opens it, `fixed` and past `last_affected` close
    /// it).
    pub fn affects(&self, version: &str) -> bool {
        if self.versions.iter().any(|v| v == version) {
            return true;
        }
        let Ok(v) = semver::Version::parse(version) else {
            return false;
        };
        self.ranges.iter().any(|events| {
            let mut affected = false;
            for e in events {
                match e {
                    Event::Introduced(at) if v >= *at => affected = true,
                    Event::Fixed(at) if v >= *at => affected = false,
                    Event::LastAffected(at) if v > *at => affected = false,
                    _ => {}
                }
            }
            affected
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LODASH: &str = r#"{
      "schema_version": "1.6.0",
      "id": "GHSA-35jh-r3h4-6jhm",
      "summary": "Command Injection in lodash",
      "aliases": ["CVE-2021-23337"],
      "affected": [{
        "package": {"ecosystem": "npm", "name": "lodash"},
        "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}]
      }, {
        "package": {"ecosystem": "PyPI", "name": "lodash"},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]
      }],
      "database_specific": {"severity": "HIGH", "github_reviewed": true}
    }"#;

    #[test]
    fn a_github_advisory_affects_the_versions_before_its_fix() {
        let parsed = parse(LODASH.as_bytes()).unwrap();
        assert_eq!(parsed.len(), 1, "npm only");
        let (name, advisory) = &parsed[0];
        assert_eq!(name, "lodash");
        assert_eq!(advisory.severity, Severity::High);
        assert_eq!(advisory.fixed.as_deref(), Some("4.17.21"));
        assert!(advisory.affects("4.17.20"));
        assert!(advisory.affects("0.1.0"));
        assert!(
            advisory.affects("4.17.21-rc.1"),
            "a pre-release of the fix is before it"
        );
        assert!(!advisory.affects("4.17.21"));
        assert!(!advisory.affects("5.0.0"));
        assert!(!advisory.affects("not-a-version"));
    }

    #[test]
    fn several_ranges_last_affected_listed_versions_and_malware() {
        let json = r#"{"id": "MAL-2024-1", "details": "Malicious code in evil-pkg\nmore",
          "affected": [{"package": {"ecosystem": "npm", "name": "evil-pkg"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "1.0.0"}, {"last_affected": "1.2.0"}, {"introduced": "2.0.0"}, {"fixed": "2.0.5"}]}],
            "versions": ["0.0.1-beta"]}]}"#;
        let (_, a) = &parse(json.as_bytes()).unwrap()[0];
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.summary, "Malicious code in evil-pkg");
        for (version, affected) in [
            ("0.9.0", false),
            ("0.0.1-beta", true),
            ("1.0.0", true),
            ("1.2.0", true),
            ("1.2.1", false),
            ("2.0.4", true),
            ("2.0.5", false),
        ] {
            assert_eq!(a.affects(version), affected, "{version}");
        }
    }

    #[test]
    fn a_withdrawn_advisory_affects_nothing_and_junk_is_an_error() {
        let json = r#"{"id": "GHSA-x", "withdrawn": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "npm", "name": "a"}, "versions": ["1.0.0"]}]}"#;
        assert!(parse(json.as_bytes()).unwrap().is_empty());
        assert!(parse(b"[1, 2]").is_err());
        assert!(parse(br#"{"affected": []}"#).is_err(), "an id is required");
    }
}
