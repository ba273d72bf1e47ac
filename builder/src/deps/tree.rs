//! Copying `node_modules` trees in and out of the dependency cache, on the blocking pool.
//!
//! A tree an install leaves is mostly hard links to the pnpm store's files: the store's user's,
//! read-only to every build (see [`crate::sandbox::Confinement::take_back`]). Those are linked
//! again, both ways: they cannot be written through any name a build holds. Everything else
//! (the build's own files: what allowed build scripts wrote, the commands pnpm gave the build
//! its own copy of) is copied, both ways, so that a build writing into its `node_modules` writes
//! its own copy, never the cache's nor the next build's. Folders and links are made anew.
//!
//! Both walks change links, never follow them, and run only when none of the build's processes
//! does (after the install's last command ended; before its first).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// What a copy made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Files, folders and links.
    pub entries: u64,
    /// The files' bytes (linked ones too: the cache keeps them alive after the store drops them).
    pub bytes: u64,
}

/// Copies `from` (a `node_modules` folder) to `to` (not there yet): files owned by `shared_uid`
/// (the store's user) are hard-linked, others copied; `owner` takes every folder, link and
/// copied file (`None`: left as the copy makes them, the daemon's).
pub fn copy_tree(
    from: &Path,
    to: &Path,
    shared_uid: Option<u32>,
    owner: Option<(u32, u32)>,
) -> std::io::Result<Copied> {
    let mut copied = Copied::default();
    let chown = |path: &Path| match owner {
        Some((uid, gid)) => std::os::unix::fs::lchown(path, Some(uid), Some(gid)),
        None => Ok(()),
    };
    for entry in walkdir::WalkDir::new(from).follow_links(false) {
        let entry = entry.map_err(std::io::Error::other)?;
        let rel = entry.path().strip_prefix(from).map_err(std::io::Error::other)?;
        let target = to.join(rel);
        let meta = entry.metadata().map_err(std::io::Error::other)?;
        let kind = meta.file_type();
        if kind.is_dir() {
            std::fs::create_dir(&target)?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
            chown(&target)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
            chown(&target)?;
        } else if kind.is_file() {
            copied.bytes += meta.len();
            let shared = shared_uid == Some(meta.uid());
            if !shared || std::fs::hard_link(entry.path(), &target).is_err() {
                // The build's own file, or a store's file on another filesystem: a copy, the
                // build's when it was the build's, else the store's user's (read-only to it).
                std::fs::copy(entry.path(), &target)?;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(meta.mode() & 0o777))?;
                match shared {
                    true => std::os::unix::fs::lchown(&target, Some(meta.uid()), Some(meta.gid()))?,
                    false => chown(&target)?,
                }
            }
        } else {
            // FIFOs, sockets, devices: nothing an install leaves for a build to use.
            continue;
        }
        copied.entries += 1;
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_copied_links_and_folders_made_anew_and_the_copy_is_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("node_modules");
        std::fs::create_dir_all(from.join(".pnpm/a@1/node_modules/a")).unwrap();
        std::fs::write(
            from.join(".pnpm/a@1/node_modules/a/index.js"),
            "module.exports = 1",
        )
        .unwrap();
        std::os::unix::fs::symlink(".pnpm/a@1/node_modules/a", from.join("a")).unwrap();
        let fifo = from.join("pipe");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let to = dir.path().join("copy");
        let copied = copy_tree(&from, &to, None, None).unwrap();
        assert_eq!(copied.bytes, 18);
        // node_modules, .pnpm, a@1, node_modules, a, index.js, the link; not the FIFO.
        assert_eq!(copied.entries, 7);
        assert_eq!(
            std::fs::read_link(to.join("a")).unwrap(),
            Path::new(".pnpm/a@1/node_modules/a")
        );
        assert!(!to.join("pipe").exists());
        // Not the same file: writing the copy leaves the original as it was.
        std::fs::write(to.join("a/index.js"), "tampered").unwrap();
        assert_eq!(
            std::fs::read_to_string(from.join(".pnpm/a@1/node_modules/a/index.js")).unwrap(),
            "module.exports = 1"
        );
    }

    #[test]
    fn files_of_the_shared_owner_are_linked() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("node_modules");
        std::fs::create_dir_all(&from).unwrap();
        std::fs::write(from.join("shared.js"), "x").unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let to = dir.path().join("copy");
        copy_tree(&from, &to, Some(me), None).unwrap();
        let (a, b) = (
            std::fs::metadata(from.join("shared.js")).unwrap(),
            std::fs::metadata(to.join("shared.js")).unwrap(),
        );
        assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()), "a hard link");
    }
}
