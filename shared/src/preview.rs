//! Preview hosts: `<versionId>.<domain>` is one version forever; `<project label>.<domain>` is a
//! project's latest version. Labels are DNS labels (≤ 63 characters of `[a-z0-9-]`).

use sha2::{Digest, Sha256};

use crate::domain::{ProjectId, UserId, VersionId};

/// The label of a project's always-latest host: a readable slug of the project id plus 12 hex
/// digits of a hash of the exact `(user, project)` pair, so two projects never share a label
/// (ids differ in case and `_` where labels cannot). It always holds a '-', so it never parses
/// as a version id.
pub fn project_label(user: &UserId, project: &ProjectId) -> String {
    let mut slug: String = project
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    slug.truncate(40);
    let slug = slug.trim_matches('-');
    let slug = if slug.is_empty() { "p" } else { slug };
    let digest = Sha256::digest(format!("{}\n{}", user.as_str(), project.as_str()).as_bytes());
    format!("{slug}-{}", &hex::encode(digest)[..12])
}

/// How preview URLs are written.
#[derive(Debug, Clone)]
pub struct PreviewUrls {
    pub scheme: String,
    pub domain: String,
    /// `None`: the scheme's default port.
    pub port: Option<u16>,
}

impl PreviewUrls {
    fn url(&self, label: &str) -> String {
        let default_port = match self.scheme.as_str() {
            "https" => 443,
            _ => 80,
        };
        match self.port.filter(|p| *p != default_port) {
            Some(port) => format!("{}://{label}.{}:{port}/", self.scheme, self.domain),
            None => format!("{}://{label}.{}/", self.scheme, self.domain),
        }
    }

    /// The permanent URL of one version.
    pub fn version_url(&self, id: VersionId) -> String {
        self.url(&id.to_string())
    }

    /// The project's always-latest URL.
    pub fn latest_url(&self, user: &UserId, project: &ProjectId) -> String {
        self.url(&project_label(user, project))
    }

    /// The label of a `Host` header value when it is under the preview domain.
    pub fn label_of_host<'h>(&self, host: &'h str) -> Option<&'h str> {
        let host = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        let label = host.strip_suffix(self.domain.as_str())?.strip_suffix('.')?;
        // A DNS label: anything else names no version or project, and is not looked up.
        let dns =
            (1..=63).contains(&label.len()) && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        dns.then_some(label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_dns_safe_and_distinct() {
        let u = UserId::parse("U_1").unwrap();
        let a = project_label(&u, &ProjectId::parse("Salon_App").unwrap());
        let b = project_label(&u, &ProjectId::parse("salon-app").unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("salon-app-"));
        let long = project_label(&u, &ProjectId::parse(&"x".repeat(64)).unwrap());
        assert!(long.len() <= 63);
        assert!(long
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        let dashes = project_label(&u, &ProjectId::parse("---").unwrap());
        assert!(dashes.starts_with("p-"));
    }

    #[test]
    fn urls_and_hosts() {
        let urls = PreviewUrls {
            scheme: "http".into(),
            domain: "localhost".into(),
            port: Some(8081),
        };
        let id = VersionId::new();
        assert_eq!(urls.version_url(id), format!("http://{id}.localhost:8081/"));
        assert_eq!(urls.label_of_host("abc.localhost:8081"), Some("abc"));
        assert_eq!(urls.label_of_host("abc.localhost"), Some("abc"));
        assert_eq!(urls.label_of_host("localhost:8081"), None);
        assert_eq!(urls.label_of_host("a.b.localhost"), None);
        assert_eq!(urls.label_of_host("abc.example.com"), None);
        assert_eq!(urls.label_of_host("a_b.localhost"), None);
        assert_eq!(urls.label_of_host("a%2e.localhost"), None);
        assert_eq!(urls.label_of_host(&format!("{}.localhost", "a".repeat(64))), None);
        let tls = PreviewUrls {
            scheme: "https".into(),
            domain: "p.example.com".into(),
            port: Some(443),
        };
        assert_eq!(tls.version_url(id), format!("https://{id}.p.example.com/"));
    }
}
