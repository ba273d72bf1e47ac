//! What an install asks of the package cache: a request to the virtual registry host
//! ([`super::HOST`]) as the egress proxy receives it (absolute form, `GET http://host/path`),
//! read into a package's metadata or one of its tarballs. Anything else is not the cache's.

/// One request to the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// A package's metadata (a packument): `/name`, `/@scope%2fname`. `accept` is the client's
    /// `Accept` (the abbreviated document or the full one).
    Metadata { name: String, accept: Option<String> },
    /// A tarball: `/name/-/name-1.0.0.tgz`, `/@scope/name/-/name-1.0.0.tgz`.
    Tarball { name: String, version: String },
    /// A request for the cache's host that it does not serve, and why.
    Refused(String),
}

/// `None` when `head` is not a request for the cache's host (the proxy then treats it as any
/// other); otherwise what it asks.
pub fn parse(head: &[u8]) -> Option<Ask> {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = req.parse(head) else {
        return None;
    };
    let (method, target) = (req.method?, req.path?);
    let rest = target.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let authority = authority.to_ascii_lowercase();
    if authority != super::HOST && authority != format!("{}:80", super::HOST) {
        return None;
    }
    if method != "GET" {
        return Some(Ask::Refused(format!(
            "{method}: the package cache serves GET only"
        )));
    }
    let accept = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("accept"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::to_owned);
    Some(ask(path, accept))
}

/// A path on the cache's host as what it asks.
pub fn ask(path: &str, accept: Option<String>) -> Ask {
    let refuse = || Ask::Refused(format!("{path}: not a package's metadata or tarball"));
    if path.contains(['?', '#']) {
        return refuse();
    }
    let path = path.trim_start_matches('/');
    // `@scope%2fname` is how clients ask for a scoped package's metadata.
    let decoded = path.replace("%2f", "/").replace("%2F", "/");
    if decoded.contains('%') {
        return refuse();
    }
    let parts: Vec<&str> = decoded.split('/').collect();
    let (name, rest) = match parts.as_slice() {
        [scope, name, rest @ ..] if scope.starts_with('@') => (format!("{scope}/{name}"), rest),
        [name, rest @ ..] => ((*name).to_owned(), rest),
        [] => return refuse(),
    };
    if !valid_name(&name) {
        return refuse();
    }
    match rest {
        [] => Ask::Metadata { name, accept },
        ["-", file] => {
            let base = name.rsplit('/').next().unwrap_or(&name);
            let version = file
                .strip_prefix(base)
                .and_then(|v| v.strip_prefix('-'))
                .and_then(|v| v.strip_suffix(".tgz"));
            match version {
                Some(version) if valid_version(version) => Ask::Tarball {
                    name,
                    version: version.to_owned(),
                },
                _ => refuse(),
            }
        }
        _ => refuse(),
    }
}

/// An npm package name: `name` or `@scope/name`, each part of URL-safe characters, not
/// starting with `.` or `_`, at most 214 characters in all.
pub fn valid_name(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '_'])
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    if name.len() > 214 {
        return false;
    }
    match name.strip_prefix('@') {
        Some(scoped) => matches!(scoped.split_once('/'), Some((scope, base)) if part(scope) && part(base)),
        None => part(name),
    }
}

/// A version as it appears in a tarball's name (semver's characters).
pub fn valid_version(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= 256
        && version.as_bytes()[0].is_ascii_digit()
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.+".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(name: &str, version: &str) -> Ask {
        Ask::Tarball {
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn tarballs_and_metadata_of_plain_and_scoped_packages_are_understood() {
        assert_eq!(
            ask("/is-number/-/is-number-7.0.0.tgz", None),
            tarball("is-number", "7.0.0")
        );
        assert_eq!(
            ask("/@types/react/-/react-19.1.8.tgz", None),
            tarball("@types/react", "19.1.8")
        );
        assert_eq!(
            ask("/esbuild/-/esbuild-0.25.0-beta.1+build.tgz", None),
            tarball("esbuild", "0.25.0-beta.1+build")
        );
        assert_eq!(
            ask("/react", Some("application/json".into())),
            Ask::Metadata {
                name: "react".into(),
                accept: Some("application/json".into())
            }
        );
        for scoped in ["/@types%2freact", "/@types%2Freact", "/@types/react"] {
            assert_eq!(
                ask(scoped, None),
                Ask::Metadata {
                    name: "@types/react".into(),
                    accept: None
                },
                "{scoped}"
            );
        }
    }

    #[test]
    fn other_paths_and_names_are_refused() {
        for bad in [
            "/",
            "/../etc/passwd",
            "/is-number/-/left-pad-1.3.0.tgz",
            "/is-number/-/is-number-7.0.0.tar",
            "/is-number/-/is-number-.tgz",
            "/is-number/-/is-number-7.0.0.tgz?x=1",
            "/is-number/-/../../x.tgz",
            "/is-number/7.0.0",
            "/@scope",
            "/.hidden",
            "/a%00b",
            "/@types/react/-/types-react-19.1.8.tgz",
            "/is-number/-/is-number-7.0.0.tgz/more",
        ] {
            assert!(matches!(ask(bad, None), Ask::Refused(_)), "{bad}");
        }
        // A name that is a prefix of another's: the rest is not a version.
        assert!(matches!(ask("/is/-/is-number-7.0.0.tgz", None), Ask::Refused(_)));
    }

    #[test]
    fn only_the_caches_host_is_taken_and_only_for_get() {
        let head = |s: &str| s.as_bytes().to_vec();
        assert_eq!(
            parse(&head(
                "GET http://packages.kiln.internal/is-number/-/is-number-7.0.0.tgz HTTP/1.1\r\nHost: x\r\n\r\n"
            )),
            Some(tarball("is-number", "7.0.0"))
        );
        assert_eq!(
            parse(&head(
                "GET http://Packages.Kiln.Internal:80/react HTTP/1.1\r\nAccept: application/vnd.npm.install-v1+json\r\n\r\n"
            )),
            Some(Ask::Metadata {
                name: "react".into(),
                accept: Some("application/vnd.npm.install-v1+json".into())
            })
        );
        assert!(matches!(
            parse(&head(
                "DELETE http://packages.kiln.internal/react HTTP/1.1\r\n\r\n"
            )),
            Some(Ask::Refused(_))
        ));
        for other in [
            "GET http://packages.kiln.internal.evil.com/react HTTP/1.1\r\n\r\n",
            "GET http://packages.kiln.internal:8080/react HTTP/1.1\r\n\r\n",
            "CONNECT packages.kiln.internal:443 HTTP/1.1\r\n\r\n",
            "GET http://registry.npmjs.org/react HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse(&head(other)), None, "{other}");
        }
    }
}
