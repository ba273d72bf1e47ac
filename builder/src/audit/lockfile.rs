//! The packages a pnpm lockfile (`pnpm-lock.yaml`, lockfile versions 6 and 9) resolved: the
//! keys of its top-level `packages:` mapping, read with a YAML parser (`saphyr-parser`, the
//! maintained successor of yaml-rust) as a stream of events. Nothing is built from the events
//! but the keys, so an alias is never expanded (a "billion laughs" file costs one pass) and a
//! hostile file costs at most [`MAX_LOCKFILE_BYTES`] of parsing.

use std::collections::BTreeSet;

use saphyr_parser::{Event, Parser};

/// A lockfile larger than this is not audited (the audit says so).
pub const MAX_LOCKFILE_BYTES: usize = 32 * 1024 * 1024;

/// One resolved package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    pub name: String,
    pub version: String,
}

/// The lockfile is not YAML.
#[derive(Debug, thiserror::Error)]
#[error("line {line}, column {column}: {reason}")]
pub struct LockfileError {
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

/// One open mapping or sequence of the walk.
struct Frame {
    mapping: bool,
    /// In a mapping: the next node is a key.
    key_next: bool,
    /// This is the top-level `packages` mapping.
    packages: bool,
}

/// The distinct `name@version`s under `packages:` of the first document. Entries that are not
/// registry versions (`git+…`, `file:`, tarball URLs) are skipped: no advisory names them.
pub fn read(text: &str) -> Result<BTreeSet<Package>, LockfileError> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<Frame> = Vec::new();
    // The previous node was the top-level key `packages`.
    let mut packages_key = false;
    for event in Parser::new_from_str(text) {
        let (event, _) = event.map_err(|e| LockfileError {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            reason: e.info().to_owned(),
        })?;
        let opens = match &event {
            Event::DocumentEnd => break,
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                continue;
            }
            Event::MappingStart(..) => Some(true),
            Event::SequenceStart(..) => Some(false),
            Event::Scalar(..) | Event::Alias(..) => None,
            _ => continue,
        };
        // Where this node stands in its parent.
        let (is_key, in_packages, top_level) = match stack.last_mut() {
            Some(parent) => {
                let is_key = parent.mapping && parent.key_next;
                if parent.mapping {
                    parent.key_next = !parent.key_next;
                }
                (is_key, parent.packages, stack.len() == 1)
            }
            None => (false, false, false),
        };
        let value_of_packages = std::mem::take(&mut packages_key) && !is_key;
        match (opens, event) {
            (Some(mapping), _) => stack.push(Frame {
                mapping,
                key_next: true,
                packages: mapping && value_of_packages,
            }),
            (None, Event::Scalar(value, ..)) if is_key => {
                if in_packages {
                    if let Some(package) = parse_key(&value) {
                        out.insert(package);
                    }
                } else if top_level {
                    packages_key = value == "packages";
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// [`read`], with no packages for a file that is not YAML.
pub fn packages(text: &str) -> BTreeSet<Package> {
    read(text).unwrap_or_default()
}

/// `name@version` (v9), `/name@version` (v6), with a peer suffix `(react@18.2.0)` or
/// `_peer@1` dropped; scoped names keep their `@scope/`.
fn parse_key(key: &str) -> Option<Package> {
    let key = key.strip_prefix('/').unwrap_or(key);
    let key = key.split('(').next()?;
    let at = key.get(1..)?.rfind('@')? + 1;
    let (name, version) = (&key[..at], &key[at + 1..]);
    let version = version.split('_').next()?;
    if !valid_name(name) || semver::Version::parse(version).is_err() {
        return None;
    }
    Some(Package {
        name: name.to_owned(),
        version: version.to_owned(),
    })
}

/// An npm package name: `name` or `@scope/name`, each part of the characters npm allows, at most
/// 214 bytes. (The fuzz target `lockfile` found `//a@b@1.0.0` read as the package `/a@b`.)
fn valid_name(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-~".contains(&b))
    };
    let parts = match name.strip_prefix('@') {
        Some(scoped) => match scoped.split_once('/') {
            Some((scope, rest)) => part(scope) && part(rest),
            None => false,
        },
        None => part(name),
    };
    parts && name.len() <= 214
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        packages(text)
            .into_iter()
            .map(|p| format!("{}@{}", p.name, p.version))
            .collect()
    }

    #[test]
    fn the_packages_of_a_v9_lockfile() {
        let text = "lockfileVersion: '9.0'\n\nimporters:\n\n  .:\n    dependencies:\n      is-number:\n        specifier: 7.0.0\n        version: 7.0.0\n\npackages:\n\n  '@babel/core@7.24.0':\n    resolution: {integrity: sha512-x}\n\n  is-number@7.0.0:\n    resolution: {integrity: sha512-y}\n    engines: {node: '>=0.12.0'}\n\n  react-dom@18.2.0:\n    resolution: {integrity: sha512-z}\n    peerDependencies:\n      react: ^18.2.0\n\n  left-pad@git+https://github.com/x/left-pad.git#abc:\n    resolution: {tarball: x}\n\nsnapshots:\n\n  react-dom@18.2.0(react@18.2.0):\n    dependencies:\n      react: 18.2.0\n  lodash@4.17.20: {}\n";
        assert_eq!(
            names(text),
            ["@babel/core@7.24.0", "is-number@7.0.0", "react-dom@18.2.0"]
        );
    }

    #[test]
    fn the_packages_of_a_v6_lockfile() {
        let text = "lockfileVersion: '6.0'\n\npackages:\n\n  /@types/node@20.1.0:\n    resolution: {integrity: sha512-x}\n    dev: true\n\n  /react-dom@18.2.0(react@18.2.0):\n    resolution: {integrity: sha512-z}\n\n  /lodash@4.17.20:\n    resolution: {integrity: sha512-l}\n";
        assert_eq!(
            names(text),
            ["@types/node@20.1.0", "lodash@4.17.20", "react-dom@18.2.0"]
        );
    }

    #[test]
    fn junk_gives_no_packages() {
        assert!(packages("packages:\n  : \n  @:\n  x@:\n  @1.0.0:\n  a b@1.0.0:\n").is_empty());
        assert!(packages("\u{0}\u{ffff}packages:").is_empty());
        // Not npm names: a second slash, an `@` inside, a scope without a name.
        assert!(packages("packages:\n  //a@b@1.0.0: {}\n  a@b@1.0.0: {}\n  '@s@1.0.0': {}\n  '@s/@1.0.0': {}\n  a/b@1.0.0: {}\n").is_empty());
    }

    #[test]
    fn yaml_forms_pnpm_does_not_write_are_read_as_yaml() {
        // Flow style, double quotes, comments, and `packages` only at the top level.
        let text = "# a comment\nimporters:\n  .:\n    packages:\n      nested@1.0.0: {}\npackages: {\"a@1.0.0\": {resolution: x}, b@2.0.0: {}}\n";
        assert_eq!(names(text), ["a@1.0.0", "b@2.0.0"]);
        // Only the first document.
        let text = "packages:\n  a@1.0.0: {}\n---\npackages:\n  b@1.0.0: {}\n";
        assert_eq!(names(text), ["a@1.0.0"]);
        // A `packages` that is not a mapping has no packages; a key that is not a scalar is skipped.
        assert!(packages("packages: [a@1.0.0]\n").is_empty());
        assert_eq!(
            names("packages:\n  ? [x@1.0.0]\n  : 1\n  c@3.0.0: {}\n"),
            ["c@3.0.0"]
        );
    }

    #[test]
    fn aliases_are_not_expanded_and_broken_yaml_is_an_error() {
        // A "billion laughs": twenty levels of nine aliases each would be 9^20 nodes.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..20 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        text.push_str("packages:\n  big@1.0.0: *a19\n");
        let started = std::time::Instant::now();
        assert_eq!(names(&text), ["big@1.0.0"]);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));

        let err = read("packages:\n  a@1.0.0: {\n  b: [\n").unwrap_err();
        assert!(err.line >= 1, "{err}");
        let err = read("packages:\n\ta@1.0.0: {}\n").unwrap_err();
        assert!(!err.reason.is_empty(), "{err}");
    }
}
