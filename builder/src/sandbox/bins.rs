//! The commands installed packages declare (package.json's `bin`), made the build's own copies
//! before the build's half of an install (see [`super::Confinement::own_commands`]): pnpm `chmod`s
//! them when it links commands, which only a file's owner may do, and the store's files are
//! the store user's. Only pnpm has written the tree at this point (no code of the project's or
//! its dependencies' has run); even so, links are never followed and no path leaves its
//! package's folder.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path};

/// The largest package.json read for its `bin`.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

/// Whether `path` is the package.json of a package pnpm installed in `project`:
/// `node_modules/.pnpm/<entry>/node_modules/<name>/package.json` (or `@scope/<name>`).
pub(super) fn is_installed_manifest(project: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(project) else {
        return false;
    };
    let parts: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
    let head = ["node_modules", ".pnpm"];
    match parts.as_slice() {
        [a, b, _, "node_modules", _, "package.json"] => [*a, *b] == head,
        [a, b, _, "node_modules", scope, _, "package.json"] => [*a, *b] == head && scope.starts_with('@'),
        _ => false,
    }
}

/// The relative paths package.json declares as commands (`bin`: a path, or names to paths).
fn commands(manifest: &serde_json::Value) -> Vec<&str> {
    match manifest.get("bin") {
        Some(serde_json::Value::String(one)) => vec![one.as_str()],
        Some(serde_json::Value::Object(named)) => named.values().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    }
}

/// Makes each command of the package whose package.json is `manifest` a copy owned by the
/// build (`ids`), mode 755, where it is still a file the store's user (`store_uid`) shares
/// with the store (more than one name). A command that is missing, a link, a folder or outside
/// the package is left alone.
pub(super) fn own_commands(manifest: &Path, store_uid: u32, ids: (u32, u32)) -> std::io::Result<()> {
    let Some(package) = manifest.parent() else {
        return Ok(());
    };
    let meta = std::fs::symlink_metadata(manifest)?;
    if !meta.is_file() || meta.len() > MAX_MANIFEST_BYTES {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&std::fs::read(manifest)?) else {
        return Ok(());
    };
    for command in commands(&value) {
        let rel = Path::new(command);
        if rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            continue;
        }
        let path = package.join(rel);
        // Every folder on the way is the package's own, not a link.
        let mut dir = package.to_path_buf();
        let inside = rel.parent().into_iter().flat_map(|p| p.components()).all(|c| {
            dir.push(c);
            std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir())
        });
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !inside || !meta.is_file() || meta.uid() != store_uid || meta.nlink() < 2 {
            continue;
        }
        copy_as_own(&path, ids)?;
    }
    Ok(())
}

/// Replaces the file at `path` by a copy owned by `ids`, mode 755.
fn copy_as_own(path: &Path, (uid, gid): (u32, u32)) -> std::io::Result<()> {
    let content = std::fs::read(path)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".kiln-own");
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&tmp)?;
    file.write_all(&content)?;
    std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_manifests_of_installed_packages_are_read() {
        let project = Path::new("/w/project");
        let yes = |p: &str| is_installed_manifest(project, &project.join(p));
        assert!(yes(
            "node_modules/.pnpm/astro@5.18.2/node_modules/astro/package.json"
        ));
        assert!(yes(
            "node_modules/.pnpm/@astrojs+x@1/node_modules/@astrojs/x/package.json"
        ));
        assert!(!yes("package.json"));
        assert!(!yes("node_modules/astro/package.json"));
        assert!(!yes("node_modules/.pnpm/a@1/node_modules/a/lib/package.json"));
        assert!(!yes("node_modules/.pnpm/a@1/node_modules/scope/a/package.json"));
    }

    #[test]
    fn commands_are_a_path_or_names_to_paths() {
        let one = serde_json::json!({"bin": "astro.js"});
        assert_eq!(commands(&one), ["astro.js"]);
        let named = serde_json::json!({"bin": {"tsc": "./bin/tsc", "tsserver": "./bin/tsserver"}});
        assert_eq!(commands(&named), ["./bin/tsc", "./bin/tsserver"]);
        assert!(commands(&serde_json::json!({"bin": 3})).is_empty());
    }

    #[test]
    fn a_shared_command_becomes_an_own_copy_and_nothing_leaves_the_package() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("pkg");
        std::fs::create_dir_all(package.join("bin")).unwrap();
        let store = dir.path().join("store-file");
        std::fs::write(&store, "#!/usr/bin/env node\n").unwrap();
        std::fs::hard_link(&store, package.join("bin/cli.js")).unwrap();
        std::fs::write(dir.path().join("outside.js"), "x").unwrap();
        std::fs::hard_link(dir.path().join("outside.js"), dir.path().join("outside-2.js")).unwrap();
        let manifest = package.join("package.json");
        std::fs::write(
            &manifest,
            r#"{"bin": {"cli": "./bin/cli.js", "out": "../outside.js"}}"#,
        )
        .unwrap();
        let me = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        own_commands(&manifest, me.0, me).unwrap();
        let copy = std::fs::metadata(package.join("bin/cli.js")).unwrap();
        assert_eq!(copy.nlink(), 1, "an own copy");
        assert_eq!(copy.mode() & 0o777, 0o755);
        assert_eq!(
            std::fs::metadata(&store).unwrap().nlink(),
            1,
            "the store's file is left as it was"
        );
        assert_eq!(
            std::fs::read_to_string(package.join("bin/cli.js")).unwrap(),
            "#!/usr/bin/env node\n"
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("outside.js")).unwrap().nlink(),
            2,
            "outside the package"
        );
    }
}
