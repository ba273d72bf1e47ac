//! The packages a pnpm lockfile (`pnpm-lock.yaml`, lockfile versions 6 and 9) resolved:
//! the keys of its `packages:` section, read line by line (pnpm writes that section in one
//! fixed shape, so no YAML parser is needed, and a hostile file costs one pass over at most
//! [`MAX_LOCKFILE_BYTES`]).

use std::collections::BTreeSet;

/// A lockfile larger than this is not audited (the audit says so).
pub const MAX_LOCKFILE_BYTES: usize = 32 * 1024 * 1024;

/// One resolved package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    pub name: String,
    pub version: String,
}

/// The distinct `name@version`s under `packages:`. Entries that are not registry versions
/// (`git+…`, `file:`, tarball URLs) are skipped: no advisory names them.
pub fn packages(text: &str) -> BTreeSet<Package> {
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            // A top-level key starts or ends the section.
            inside = line.trim_end() == "packages:";
            continue;
        }
        if !inside {
            continue;
        }
        // Keys are indented by exactly two spaces; their fields by more.
        let Some(key) = line.strip_prefix("  ").filter(|k| !k.starts_with(' ')) else {
            continue;
        };
        let key = key.trim_end().trim_end_matches(" {}");
        let Some(key) = key.strip_suffix(':') else {
            continue;
        };
        if let Some(package) = parse_key(unquote(key)) {
            out.insert(package);
        }
    }
    out
}

fn unquote(key: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(inner) = key.strip_prefix(q).and_then(|k| k.strip_suffix(q)) {
            return inner;
        }
    }
    key
}

/// `name@version` (v9), `/name@version` (v6), with a peer suffix `(react@18.2.0)` or
/// `_peer@1` dropped; scoped names keep their `@scope/`.
fn parse_key(key: &str) -> Option<Package> {
    let key = key.strip_prefix('/').unwrap_or(key);
    let key = key.split('(').next()?;
    let at = key.get(1..)?.rfind('@')? + 1;
    let (name, version) = (&key[..at], &key[at + 1..]);
    let version = version.split('_').next()?;
    let valid_name = !name.is_empty()
        && name.len() <= 214
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@/._-~".contains(&b));
    if !valid_name || semver::Version::parse(version).is_err() {
        return None;
    }
    Some(Package {
        name: name.to_owned(),
        version: version.to_owned(),
    })
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
    }
}
