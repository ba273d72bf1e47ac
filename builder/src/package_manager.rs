//! What a project says about the tools it expects, and how Kiln answers with its own: pnpm on
//! the farm's shared store, whatever manager the project came from.
//!
//! - A project with an npm or Yarn lockfile and no `pnpm-lock.yaml` keeps the versions its
//!   lockfile pins: `pnpm import` turns that lockfile into a `pnpm-lock.yaml` before the
//!   install ([`foreign_lockfile`], [`import_args`]).
//! - `engines.node` that this builder's Node does not satisfy fails the install, naming both
//!   ([`check_engines`]); a range npm's semver cannot read is logged and ignored.
//! - `packageManager` naming another manager (or another pnpm) is logged, not fatal
//!   ([`package_manager_note`]); pnpm is told not to fetch or insist on the one it names (see
//!   [`crate::scripts::PINNED_SETTINGS`]).

use nodejs_semver::{Range, Version};

/// Lockfiles of other managers `pnpm import` reads, in the order it prefers them.
pub const FOREIGN_LOCKFILES: &[&str] = &["npm-shrinkwrap.json", "package-lock.json", "yarn.lock"];

/// The other manager's lockfile to import, when the project has one and no `pnpm-lock.yaml`
/// (`has` says whether the sources hold a file).
pub fn foreign_lockfile(has: impl Fn(&str) -> bool) -> Option<&'static str> {
    if has("pnpm-lock.yaml") {
        return None;
    }
    FOREIGN_LOCKFILES.iter().copied().find(|name| has(name))
}

/// The arguments of `pnpm import`: the same store, cache and pinned settings as the install
/// (see [`crate::scripts::install_args`]), and no `.pnpmfile.cjs` (no code of the project's
/// runs in the store's half).
pub fn import_args(store: &std::path::Path) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "import".into(),
        // `pnpm import` takes the store only as a setting.
        format!("--config.store-dir={}", store.display()),
        format!("--config.cache-dir={}", store.with_extension("cache").display()),
        "--config.ignore-pnpmfile=true".into(),
        "--reporter=append-only".into(),
    ];
    args.extend(crate::scripts::PINNED_SETTINGS.iter().map(|s| (*s).to_owned()));
    args
}

/// Why this builder's Node (`node`, as `node --version` prints it) cannot build a project
/// whose package.json asks for another in `engines.node`; `Ok(Some(note))` when the range
/// cannot be read (the build goes on, the note goes to the log).
pub fn check_engines(package_json: &serde_json::Value, node: Option<&str>) -> Result<Option<String>, String> {
    let Some(wanted) = package_json.pointer("/engines/node").and_then(|v| v.as_str()) else {
        return Ok(None);
    };
    let Some(node) = node else {
        return Ok(None);
    };
    let have = node.trim().trim_start_matches('v');
    let (Ok(range), Ok(version)) = (wanted.parse::<Range>(), have.parse::<Version>()) else {
        return Ok(Some(format!(
            "[kiln] package.json's engines.node {wanted:?} is not a version range npm can read; building with Node {have}"
        )));
    };
    if version.satisfies(&range) {
        Ok(None)
    } else {
        Err(format!(
            "package.json's engines.node asks for Node {wanted:?}, and this builder runs Node {have}: \
             widen engines.node to include {have}, or remove it"
        ))
    }
}

/// What to log when package.json's `packageManager` names another manager, or another major
/// version of pnpm than this builder's (`pnpm`, as `pnpm --version` prints it).
pub fn package_manager_note(package_json: &serde_json::Value, pnpm: Option<&str>) -> Option<String> {
    let named = package_json.get("packageManager")?.as_str()?;
    let (manager, version) = named.split_once('@').unwrap_or((named, ""));
    let version = version.split('+').next().unwrap_or_default();
    if manager != "pnpm" {
        return Some(format!(
            "[kiln] package.json names {named} as its package manager; Kiln installs with pnpm on the farm's shared store, keeping the versions its lockfile pins"
        ));
    }
    let major = |v: &str| {
        v.trim()
            .trim_start_matches('v')
            .split('.')
            .next()
            .map(str::to_owned)
    };
    match (major(version), pnpm.and_then(major)) {
        (Some(wanted), Some(have)) if !wanted.is_empty() && wanted != have => Some(format!(
            "[kiln] package.json names pnpm@{version}; this builder runs pnpm {}, which installs it",
            pnpm.unwrap_or_default().trim()
        )),
        _ => None,
    }
}

/// The 1-based line of package.json's `"node"` member inside `"engines"` (for a diagnostic).
pub fn engines_line(text: &str) -> Option<u32> {
    let start = text.find("\"engines\"")?;
    let offset = start + text[start..].find("\"node\"")?;
    Some(text[..offset].lines().count().max(1) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_foreign_lockfile_is_imported_only_without_a_pnpm_one() {
        let with = |names: &'static [&'static str]| move |n: &str| names.contains(&n);
        assert_eq!(
            foreign_lockfile(with(&["package-lock.json"])),
            Some("package-lock.json")
        );
        assert_eq!(
            foreign_lockfile(with(&["yarn.lock", "package.json"])),
            Some("yarn.lock")
        );
        assert_eq!(foreign_lockfile(with(&["yarn.lock", "pnpm-lock.yaml"])), None);
        assert_eq!(foreign_lockfile(with(&["package.json"])), None);
    }

    #[test]
    fn engines_node_is_read_as_npm_reads_it() {
        let pkg = |range: &str| json!({ "engines": { "node": range } });
        assert_eq!(
            check_engines(&pkg(">=18.17 <19 || >=20"), Some("v24.11.1\n")),
            Ok(None)
        );
        assert_eq!(
            check_engines(&pkg("^20 || ^22 || ^24"), Some("v24.11.1")),
            Ok(None)
        );
        assert_eq!(check_engines(&pkg("18.x"), Some("v18.20.0")), Ok(None));
        let refused = check_engines(&pkg(">=26"), Some("v24.11.1")).unwrap_err();
        assert!(
            refused.contains("\">=26\"") && refused.contains("Node 24.11.1"),
            "{refused}"
        );
        assert!(check_engines(&pkg("16.x"), Some("v24.0.0")).is_err());
        // Unreadable: noted, not fatal; absent: nothing to say.
        assert!(check_engines(&pkg("latest please"), Some("v24.0.0"))
            .unwrap()
            .is_some());
        assert_eq!(check_engines(&json!({}), Some("v24.0.0")), Ok(None));
        assert_eq!(check_engines(&pkg(">=26"), None), Ok(None));
    }

    #[test]
    fn another_package_manager_is_noted() {
        let pm = |named: &str| json!({ "packageManager": named });
        let note = package_manager_note(&pm("yarn@4.5.1"), Some("10.20.0")).unwrap();
        assert!(note.contains("yarn@4.5.1") && note.contains("pnpm"), "{note}");
        assert!(package_manager_note(&pm("npm@10.9.0"), Some("10.20.0")).is_some());
        let older = package_manager_note(&pm("pnpm@9.15.0+sha512.abc"), Some("10.20.0")).unwrap();
        assert!(
            older.contains("pnpm@9.15.0") && older.contains("10.20.0"),
            "{older}"
        );
        assert_eq!(package_manager_note(&pm("pnpm@10.4.1"), Some("10.20.0\n")), None);
        assert_eq!(package_manager_note(&json!({}), Some("10.20.0")), None);
    }

    #[test]
    fn the_engines_line_is_found() {
        let text = "{\n  \"name\": \"a\",\n  \"engines\": {\n    \"node\": \">=26\"\n  }\n}\n";
        assert_eq!(engines_line(text), Some(4));
        assert_eq!(engines_line("{}"), None);
    }
}
