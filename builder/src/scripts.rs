//! The two halves of an install.
//!
//! 1. **The store's half** (`pnpm install --ignore-scripts --ignore-pnpmfile`, run as the
//!    store's user): pnpm resolves, fetches packages (checked against their integrity hashes)
//!    into the shared store and links them into the workspace. No code of the project's or of
//!    a dependency's runs, and the settings that decide where pnpm writes are given on its
//!    command line ([`PINNED_SETTINGS`]), over whatever the project's `.npmrc`,
//!    `pnpm-workspace.yaml` or `package.json` say.
//! 2. **The build's half** (`pnpm rebuild --pending`, run as the build's own uid): the
//!    project's lifecycle scripts (`preinstall`, `install`, `postinstall`, `prepare`, in that
//!    order, after the packages are linked) and the build scripts of the dependencies the
//!    operator allows (`KILN_ALLOW_BUILD_SCRIPTS`) or the project itself allows
//!    (`onlyBuiltDependencies`). They can change the build's own tree only: every file
//!    `node_modules` shares with the store belongs to the store's user and is read-only to
//!    the build (a script may replace a file of its own `node_modules`, which changes that
//!    tree and nothing else), and pnpm copies, rather than links, each package whose scripts
//!    run. It runs only when pnpm left builds pending that may run, so most builds pay for
//!    one pnpm start.

use std::path::Path;

/// Settings of the store's half that no project may change, with why:
/// - `side-effects-cache`: off, so that nothing a script produced is ever put in the store;
/// - `virtual-store-dir`, `modules-dir`: inside the project (a project could otherwise send
///   pnpm's links anywhere the store's user may write, the store included);
/// - `manage-package-manager-versions`: off, so that `packageManager` never makes pnpm fetch
///   and run another pnpm (`package-manager-strict` off: a project pinning another version
///   still builds, with this host's pnpm);
/// - `verify-store-integrity`: on, whatever the project says.
pub const PINNED_SETTINGS: &[&str] = &[
    "--config.side-effects-cache=false",
    "--config.virtual-store-dir=node_modules/.pnpm",
    "--config.modules-dir=node_modules",
    "--config.manage-package-manager-versions=false",
    "--config.package-manager-strict=false",
    "--config.verify-store-integrity=true",
];

/// The project's own scripts an install runs.
const LIFECYCLE: &[&str] = &["preinstall", "install", "postinstall", "prepare"];

/// The arguments of `pnpm` for a build's install: against the shared store, offline when it
/// can, frozen when the kept lockfile still describes the dependencies.
///
/// This is the store's half of the install, run as the store's user: no lifecycle script, no
/// `.pnpmfile.cjs`, and the settings that decide where pnpm writes, whether it runs another
/// pnpm, and whether build results go into the store are given here, over any the project's
/// `.npmrc`, `pnpm-workspace.yaml` or `packageManager` says (see [`PINNED_SETTINGS`]).
pub fn install_args(store: &std::path::Path, frozen: bool) -> Vec<String> {
    let lockfile = if frozen {
        "--frozen-lockfile"
    } else {
        "--no-frozen-lockfile"
    };
    let mut args: Vec<String> = [
        "install",
        "--store-dir",
        &store.display().to_string(),
        &format!("--config.cache-dir={}", store.with_extension("cache").display()),
        "--prefer-offline",
        lockfile,
        "--ignore-scripts",
        "--ignore-pnpmfile",
        "--reporter=append-only",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(PINNED_SETTINGS.iter().map(|s| (*s).to_owned()));
    args
}

/// The largest `node_modules/.modules.yaml` read (pnpm's record of the install).
const MAX_MODULES_YAML: u64 = 4 * 1024 * 1024;

/// The arguments of the build's half: the pending builds, the operator's allowed list given
/// as the file at `allowed` (a JSON array).
pub fn rebuild_args(allowed: &Path) -> Vec<String> {
    vec![
        "rebuild".into(),
        "--pending".into(),
        format!("--config.only-built-dependencies-file={}", allowed.display()),
        "--config.side-effects-cache=false".into(),
        "--reporter=append-only".into(),
    ]
}

/// Why the build's half must run after the store's half installed into `project` (`None`: it
/// has nothing to do). What pnpm left pending is read from `node_modules/.modules.yaml`
/// without following links out of the project; pnpm writes it as JSON (a subset of YAML), and
/// one that cannot be read as such runs the build's half (pnpm then decides). `package_json`
/// is the project's, as the build read it before the install.
pub async fn pending(
    project: &Path,
    package_json: &serde_json::Value,
    allowed: &[String],
) -> Result<Option<String>, String> {
    let project = project.to_owned();
    let (package_json, allowed) = (package_json.clone(), allowed.to_vec());
    tokio::task::spawn_blocking(move || pending_blocking(&project, &package_json, &allowed))
        .await
        .map_err(|e| e.to_string())?
}

fn pending_blocking(
    project: &Path,
    package_json: &serde_json::Value,
    allowed: &[String],
) -> Result<Option<String>, String> {
    let dir = crate::beneath::open_dir_path(project).map_err(|e| e.to_string())?;
    let read = |rel: &str, max: u64| crate::beneath::read_beneath(&dir, rel, max).map_err(|e| e.to_string());
    let Some(raw) = read("node_modules/.modules.yaml", MAX_MODULES_YAML)? else {
        // No dependencies: pnpm keeps no record, and the project's own scripts are pending.
        let lifecycle = package_json
            .get("scripts")
            .is_some_and(|s| LIFECYCLE.iter().any(|name| s.get(name).is_some()));
        return Ok(lifecycle.then(|| "the project's own lifecycle scripts".into()));
    };
    let Ok(modules) = serde_json::from_slice::<serde_json::Value>(&raw) else {
        return Ok(Some("pnpm's record of the install is not JSON".into()));
    };
    let pending: Vec<&str> = modules
        .get("pendingBuilds")
        .and_then(|p| p.as_array())
        .map(|p| p.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    if pending.is_empty() {
        return Ok(None);
    }
    if pending.contains(&".") {
        return Ok(Some("the project's own lifecycle scripts".into()));
    }
    let names: Vec<&str> = pending.iter().map(|p| package_name(p)).collect();
    let listed: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| allowed.iter().any(|a| a == n))
        .collect();
    if !listed.is_empty() {
        return Ok(Some(format!("build scripts of {}", listed.join(", "))));
    }
    // The project may allow scripts itself (`onlyBuiltDependencies` and the like): pnpm then
    // decides which of the pending run.
    let own_policy = package_json.get("pnpm").is_some_and(|pnpm| {
        [
            "onlyBuiltDependencies",
            "onlyBuiltDependenciesFile",
            "neverBuiltDependencies",
            "dangerouslyAllowAllBuilds",
        ]
        .iter()
        .any(|k| pnpm.get(k).is_some())
    }) || read("pnpm-workspace.yaml", 10 * 1024 * 1024)?.is_some_and(|y| {
        let y = String::from_utf8_lossy(&y);
        y.contains("BuiltDependencies") || y.contains("dangerouslyAllowAllBuilds")
    });
    Ok(own_policy.then(|| format!("the project's own policy for {}", names.join(", "))))
}

/// `esbuild` of `esbuild@0.25.0`, `@swc/core` of `@swc/core@1.3.0`.
fn package_name(pending: &str) -> &str {
    match pending.strip_prefix('@') {
        Some(rest) => rest.rfind('@').map_or(pending, |at| &pending[..at + 1]),
        None => pending.split('@').next().unwrap_or(pending),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_entry_names_its_package() {
        assert_eq!(package_name("esbuild@0.25.0"), "esbuild");
        assert_eq!(package_name("@swc/core@1.3.0"), "@swc/core");
        assert_eq!(package_name("@scope/x"), "@scope/x");
        assert_eq!(package_name("."), ".");
    }

    #[tokio::test]
    async fn the_builds_half_runs_only_for_scripts_that_may_run() {
        let ws = tempfile::tempdir().unwrap();
        let project = ws.path().join("project");
        std::fs::create_dir_all(project.join("node_modules")).unwrap();
        let plain = serde_json::json!({ "name": "p" });
        let modules = |pending: &str| {
            std::fs::write(
                project.join("node_modules/.modules.yaml"),
                format!(r#"{{"layoutVersion": 5, "pendingBuilds": {pending}}}"#),
            )
            .unwrap()
        };
        let allowed = vec!["sharp".to_owned()];
        // No record (no dependencies): only the project's own scripts.
        assert_eq!(pending(&project, &plain, &allowed).await.unwrap(), None);
        let with_scripts = serde_json::json!({ "scripts": { "postinstall": "x" } });
        assert!(pending(&project, &with_scripts, &allowed)
            .await
            .unwrap()
            .is_some());
        modules("[]");
        assert_eq!(pending(&project, &plain, &allowed).await.unwrap(), None);
        modules(r#"["esbuild@0.25.0"]"#);
        assert_eq!(
            pending(&project, &plain, &allowed).await.unwrap(),
            None,
            "not allowed"
        );
        modules(r#"["esbuild@0.25.0", "sharp@0.33.0"]"#);
        assert_eq!(
            pending(&project, &plain, &allowed).await.unwrap().unwrap(),
            "build scripts of sharp"
        );
        modules(r#"[".", "esbuild@0.25.0"]"#);
        assert!(pending(&project, &plain, &allowed).await.unwrap().is_some());
        modules(r#"["esbuild@0.25.0"]"#);
        std::fs::write(
            project.join("pnpm-workspace.yaml"),
            "onlyBuiltDependencies:\n  - esbuild\n",
        )
        .unwrap();
        assert!(pending(&project, &plain, &allowed)
            .await
            .unwrap()
            .unwrap()
            .contains("own policy"));
        // A record that is a link out of the project is refused, not followed.
        std::fs::remove_file(project.join("node_modules/.modules.yaml")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", project.join("node_modules/.modules.yaml")).unwrap();
        assert!(pending(&project, &plain, &allowed).await.is_err());
    }
}
