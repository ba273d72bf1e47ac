//! Storing a tree: every regular file becomes a content-addressed blob (uploaded only when the
//! store does not have it) and the tree becomes a manifest. Symlinks are followed only when they
//! stay inside the tree, and a link (symbolic or hard) that leaves it fails the build; special
//! files and `.git*` entries are skipped.
//!
//! The daemon reads the tree as root while build code may still be changing it, so the tree
//! is opened once (its folder's fd) and everything in it is resolved beneath that fd by the
//! kernel: nothing is ever read by a path that a link could redirect, and what is read at
//! upload must be the very file, of the very size, that was collected.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use kiln_shared::domain::{RelativePath, MAX_DEPTH};
use kiln_shared::store::{Artifacts, Manifest, StoreError, StoredBlob};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use crate::beneath;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the output is larger than the limit of {limit_mb} MB")]
    TooLarge { limit_mb: u64 },
    #[error("the output has more than {limit} files (KILN_MAX_OUTPUT_FILES)")]
    TooMany { limit: usize },
    #[error("the output has no files")]
    Empty,
    #[error("{path} is a symbolic link to {target}, which is outside the output: Kiln does not publish links that leave it")]
    LinkOut { path: String, target: String },
    #[error("{path} is a hard link to a file outside the output: Kiln does not publish it")]
    HardLinkOut { path: String },
    #[error("{path} changed while the output was being published: Kiln publishes an output once the build is done with it")]
    Changed { path: String },
    #[error("reading the output: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PublishError {
    /// The output's fault (the build fails at once), not the store's or the disk's.
    pub fn is_the_outputs(&self) -> bool {
        matches!(
            self,
            Self::TooLarge { .. }
                | Self::TooMany { .. }
                | Self::Empty
                | Self::LinkOut { .. }
                | Self::HardLinkOut { .. }
                | Self::Changed { .. }
        )
    }
}

/// What an output may hold.
#[derive(Debug, Clone, Copy)]
pub struct OutputLimits {
    pub max_bytes: u64,
    pub max_files: usize,
}

/// A collected output: its folder, held open, and its files (what [`upload`] publishes).
#[derive(Debug)]
pub struct Output {
    root: Arc<OwnedFd>,
    files: Vec<OutputFile>,
}

/// A file of an output, as [`collect`] saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Its path in the output (a symbolic link's own path, for a link inside the output).
    pub path: RelativePath,
    pub size: u64,
    /// (device, inode) of the file read: what is read at upload must be the same file.
    id: (u64, u64),
}

impl Output {
    #[cfg(test)]
    pub fn files(&self) -> &[OutputFile] {
        &self.files
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// The files of the tree open at `root`. Refuses trees over the limits and links that leave
/// the tree (symbolic or hard); skips special files and names Kiln cannot serve.
///
/// The tree is walked through folders opened one by one beneath `root`, following no link; a
/// symbolic link is resolved by the kernel beneath `root` (`RESOLVE_BENEATH`), so that one
/// leading out cannot be followed whatever it was changed to meanwhile.
pub fn collect(root: OwnedFd, limits: OutputLimits, skip_dirs: &[&str]) -> Result<Output, PublishError> {
    let mut walk = Walk {
        root: &root,
        limits,
        skip_dirs,
        files: Vec::new(),
        total: 0,
        linked: Default::default(),
    };
    walk.folder(root.as_fd(), "", 1)?;
    let Walk { files, linked, .. } = walk;
    // A file with more links than the tree holds is linked from outside it.
    if let Some((_, _, path)) = linked.into_values().find(|(links, seen, _)| seen < links) {
        return Err(PublishError::HardLinkOut { path });
    }
    Ok(Output {
        root: Arc::new(root),
        files,
    })
}

struct Walk<'a> {
    root: &'a OwnedFd,
    limits: OutputLimits,
    skip_dirs: &'a [&'a str],
    files: Vec<OutputFile>,
    total: u64,
    /// (device, inode) of files with more than one link → (links, seen in the tree, a path)
    linked: HashMap<(u64, u64), (u64, u64, String)>,
}

impl Walk<'_> {
    /// The entries of the folder `dir` (at `prefix` in the tree; its entries are at `depth`),
    /// by name, each followed by its own entries when it is a folder.
    fn folder(&mut self, dir: BorrowedFd<'_>, prefix: &str, depth: usize) -> Result<(), PublishError> {
        let mut names = Vec::new();
        for entry in rfs::Dir::read_from(dir).map_err(io_error)? {
            let name = entry.map_err(io_error)?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(name);
            }
        }
        names.sort();
        for name in names {
            let name = OsStr::from_bytes(&name);
            let Some(utf8) = name.to_str() else {
                tracing::warn!(folder = prefix, name = %name.to_string_lossy(), "skipping a file whose name Kiln cannot serve");
                continue;
            };
            if utf8.starts_with(".git") || (depth == 1 && self.skip_dirs.contains(&utf8)) {
                continue;
            }
            let rel = if prefix.is_empty() {
                utf8.to_owned()
            } else {
                format!("{prefix}/{utf8}")
            };
            let stat = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => stat,
                Err(Errno::NOENT) => continue, // gone since listed
                Err(e) => return Err(io_error(e)),
            };
            match beneath::file_type(&stat) {
                FileType::Directory => {
                    if depth >= MAX_DEPTH {
                        // Nothing in it has a path Kiln can serve.
                        tracing::warn!(folder = %rel, "skipping a folder nested deeper than Kiln serves");
                        continue;
                    }
                    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
                    let sub =
                        rfs::openat2(dir, name, flags, Mode::empty(), resolve).map_err(|e| match e {
                            Errno::LOOP | Errno::NOTDIR | Errno::NOENT | Errno::XDEV | Errno::AGAIN => {
                                PublishError::Changed { path: rel.clone() }
                            }
                            e => io_error(e),
                        })?;
                    self.folder(sub.as_fd(), &rel, depth + 1)?;
                }
                FileType::RegularFile => self.file(rel, &stat, false)?,
                FileType::Symlink => {
                    // Followed only when it resolves to a regular file inside the tree.
                    match beneath::stat_beneath(self.root, &rel) {
                        Ok(target) => match beneath::file_type(&target) {
                            FileType::RegularFile => self.file(rel, &target, true)?,
                            // A link to a folder of the tree: its files are published anyway.
                            _ => continue,
                        },
                        Err(_) => {
                            let target = rfs::readlinkat(dir, name, Vec::new())
                                .map(|t| t.to_string_lossy().into_owned())
                                .unwrap_or_else(|e| e.to_string());
                            return Err(PublishError::LinkOut { path: rel, target });
                        }
                    }
                }
                _ => continue, // sockets, fifos, devices
            }
        }
        Ok(())
    }

    /// A regular file of the tree at `rel` (`stat` is the file's; `via_link`: `rel` is a
    /// symbolic link to it).
    fn file(&mut self, rel: String, stat: &Stat, via_link: bool) -> Result<(), PublishError> {
        let Ok(path) = RelativePath::parse(&rel) else {
            tracing::warn!(path = %rel, "skipping a file whose name Kiln cannot serve");
            return Ok(());
        };
        let ((dev, ino), links) = (identity(stat), links(stat));
        let size = u64::try_from(stat.st_size).unwrap_or(0);
        if !via_link && links > 1 {
            let seen = self.linked.entry((dev, ino)).or_insert((links, 0, rel));
            seen.1 += 1;
        }
        self.total += size;
        if self.total > self.limits.max_bytes {
            return Err(PublishError::TooLarge {
                limit_mb: self.limits.max_bytes / (1024 * 1024),
            });
        }
        if self.files.len() == self.limits.max_files {
            return Err(PublishError::TooMany {
                limit: self.limits.max_files,
            });
        }
        self.files.push(OutputFile {
            path,
            size,
            id: (dev, ino),
        });
        Ok(())
    }
}

/// (device, inode) of a file (the fields' types vary between architectures).
#[allow(clippy::useless_conversion)]
fn identity(stat: &Stat) -> (u64, u64) {
    (u64::from(stat.st_dev), u64::from(stat.st_ino))
}

/// How many hard links a file has.
#[allow(clippy::useless_conversion)]
fn links(stat: &Stat) -> u64 {
    u64::from(stat.st_nlink)
}

fn io_error(e: Errno) -> PublishError {
    PublishError::Io(e.into())
}

/// The bytes of `file` in the output open at `root`, opened beneath it (links inside followed,
/// none out) and only when it is still the regular file [`collect`] saw, of the same size.
fn read_collected(root: &OwnedFd, file: &OutputFile) -> Result<Vec<u8>, PublishError> {
    let changed = || PublishError::Changed {
        path: file.path.as_str().to_owned(),
    };
    let rel = std::path::Path::new(file.path.as_str());
    let (fd, stat) = match beneath::open_regular_beneath(root, rel) {
        Ok(Some(opened)) => opened,
        // Gone, or no longer a regular file inside the output.
        Ok(None) => return Err(changed()),
        Err(e) if e.is_refusal() => return Err(changed()),
        Err(e) => return Err(PublishError::Io(std::io::Error::other(e))),
    };
    if u64::try_from(stat.st_size).ok() != Some(file.size) || identity(&stat) != file.id {
        return Err(changed());
    }
    let body = beneath::read_at_most(fd, &stat, rel, file.size)
        .map_err(|e| PublishError::Io(std::io::Error::other(e)))?;
    if body.len() as u64 != file.size {
        return Err(changed());
    }
    Ok(body)
}

/// Uploads the blobs of `output`'s files (16 at a time) and returns the tree's manifest and
/// how many blobs were new.
pub async fn upload(artifacts: &Artifacts, output: Output) -> Result<(Manifest, usize), PublishError> {
    let artifacts = Arc::new(artifacts.clone());
    let Output { root, files } = output;
    let results: Vec<(RelativePath, StoredBlob)> = stream::iter(files.into_iter().map(|file| {
        let (artifacts, root) = (artifacts.clone(), root.clone());
        async move {
            let path = file.path.clone();
            let body = tokio::task::spawn_blocking(move || read_collected(&root, &file))
                .await
                .map_err(std::io::Error::other)??;
            let blob = artifacts.put_blob(Bytes::from(body)).await?;
            Ok::<_, PublishError>((path, blob))
        }
    }))
    .buffer_unordered(16)
    .try_collect()
    .await?;
    let mut manifest = Manifest::default();
    let mut new_blobs = 0;
    for (rel, blob) in results {
        new_blobs += usize::from(blob.uploaded);
        manifest.insert_stored(rel.as_str(), blob);
    }
    Ok((manifest, new_blobs))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};

    use super::*;

    const LIMITS: OutputLimits = OutputLimits {
        max_bytes: 1024 * 1024,
        max_files: 100,
    };

    fn open(path: &Path) -> OwnedFd {
        rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    /// A workspace with a project and its `dist` output: `index.html`, `sub/a.txt`, and what
    /// is skipped (`.git`, `node_modules`, a FIFO); `secret.txt` is beside the project.
    fn output() -> (tempfile::TempDir, PathBuf) {
        let ws = tempfile::tempdir().unwrap();
        std::fs::write(ws.path().join("secret.txt"), "root only").unwrap();
        let dist = ws.path().join("project/dist");
        std::fs::create_dir_all(dist.join("sub")).unwrap();
        std::fs::create_dir_all(dist.join(".git")).unwrap();
        std::fs::create_dir_all(dist.join("node_modules/x")).unwrap();
        std::fs::create_dir_all(dist.join("sub/node_modules")).unwrap();
        std::fs::write(dist.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(dist.join("sub/a.txt"), "a").unwrap();
        std::fs::write(dist.join("sub/node_modules/b.js"), "b").unwrap();
        std::fs::write(dist.join(".git/HEAD"), "ref").unwrap();
        std::fs::write(dist.join(".gitignore"), "x").unwrap();
        std::fs::write(dist.join("node_modules/x/y.js"), "y").unwrap();
        nix::unistd::mkfifo(
            &dist.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o666),
        )
        .unwrap();
        (ws, dist)
    }

    fn paths(output: &Output) -> Vec<(&str, u64)> {
        output.files().iter().map(|f| (f.path.as_str(), f.size)).collect()
    }

    #[test]
    fn collects_regular_files_and_links_inside_and_skips_the_rest() {
        let (_ws, dist) = output();
        symlink("index.html", dist.join("inside.html")).unwrap();
        symlink("../index.html", dist.join("sub/up.html")).unwrap();
        symlink("sub", dist.join("alias")).unwrap(); // a folder of the tree: not twice
        let output = collect(open(&dist), LIMITS, &["node_modules"]).unwrap();
        assert_eq!(
            paths(&output),
            [
                ("index.html", 11),
                ("inside.html", 11),
                ("sub/a.txt", 1),
                ("sub/node_modules/b.js", 1),
                ("sub/up.html", 11),
            ]
        );
        for file in output.files() {
            read_collected(&output.root, file).unwrap();
        }
    }

    #[test]
    fn links_out_of_the_output_fail() {
        for (link, target) in [
            ("leak.txt", "/etc/passwd"),
            ("env", "/proc/self/environ"),
            ("up.json", "../../secret.txt"),
            ("sub/up.json", "../../package.json"),
            ("dangling", "nothing"),
        ] {
            let (_ws, dist) = output();
            symlink(target, dist.join(link)).unwrap();
            let err = collect(open(&dist), LIMITS, &["node_modules"]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{link} is a symbolic link to {target}, which is outside the output: Kiln does not publish links that leave it"),
            );
            assert!(err.is_the_outputs());
        }
    }

    #[test]
    fn a_hard_link_from_outside_fails() {
        let (ws, dist) = output();
        std::fs::hard_link(ws.path().join("secret.txt"), dist.join("copy.txt")).unwrap();
        let err = collect(open(&dist), LIMITS, &["node_modules"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "copy.txt is a hard link to a file outside the output: Kiln does not publish it"
        );
        // Two links both inside are fine.
        std::fs::remove_file(dist.join("copy.txt")).unwrap();
        std::fs::hard_link(dist.join("index.html"), dist.join("copy.html")).unwrap();
        let output = collect(open(&dist), LIMITS, &["node_modules"]).unwrap();
        assert_eq!(output.files().len(), 4);
    }

    #[test]
    fn the_limits_hold() {
        let (_ws, dist) = output();
        std::fs::write(dist.join("big.bin"), vec![0u8; 1024 * 1024]).unwrap();
        let err = collect(open(&dist), LIMITS, &["node_modules"]).unwrap_err();
        assert!(matches!(err, PublishError::TooLarge { limit_mb: 1 }), "{err:?}");
        let few = OutputLimits {
            max_bytes: 1 << 30,
            max_files: 2,
        };
        let err = collect(open(&dist), few, &["node_modules"]).unwrap_err();
        assert!(matches!(err, PublishError::TooMany { limit: 2 }), "{err:?}");
    }

    #[test]
    fn a_file_changed_after_it_was_collected_is_not_published() {
        let (ws, dist) = output();
        symlink("index.html", dist.join("inside.html")).unwrap();
        let output = collect(open(&dist), LIMITS, &["node_modules"]).unwrap();
        let file = |path: &str| {
            output
                .files()
                .iter()
                .find(|f| f.path.as_str() == path)
                .unwrap()
                .clone()
        };
        // Grown.
        std::fs::write(dist.join("sub/a.txt"), "ab").unwrap();
        let err = read_collected(&output.root, &file("sub/a.txt")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "sub/a.txt changed while the output was being published: Kiln publishes an output once the build is done with it"
        );
        // Replaced by another file of the same size (a hard link to a file outside, say).
        std::fs::write(ws.path().join("other.html"), "<h1>no</h1>").unwrap();
        std::fs::remove_file(dist.join("index.html")).unwrap();
        std::fs::hard_link(ws.path().join("other.html"), dist.join("index.html")).unwrap();
        assert!(matches!(
            read_collected(&output.root, &file("index.html")).unwrap_err(),
            PublishError::Changed { .. }
        ));
        // A link inside turned into a link out, a folder into a link out.
        std::fs::remove_file(dist.join("inside.html")).unwrap();
        symlink("/etc/passwd", dist.join("inside.html")).unwrap();
        assert!(matches!(
            read_collected(&output.root, &file("inside.html")).unwrap_err(),
            PublishError::Changed { .. }
        ));
        std::fs::rename(dist.join("sub"), ws.path().join("sub")).unwrap();
        symlink(ws.path().join("sub"), dist.join("sub")).unwrap();
        assert!(matches!(
            read_collected(&output.root, &file("sub/a.txt")).unwrap_err(),
            PublishError::Changed { .. }
        ));
    }

    #[test]
    fn the_output_folder_is_held_open_whatever_its_path_becomes() {
        let (ws, dist) = output();
        let output = collect(open(&dist), LIMITS, &["node_modules"]).unwrap();
        // The build moves the folder away and puts a link to a root-only one in its place.
        let private = tempfile::tempdir().unwrap();
        std::fs::write(private.path().join("index.html"), "<h1>root</h1>").unwrap();
        std::fs::rename(&dist, ws.path().join("moved")).unwrap();
        symlink(private.path(), &dist).unwrap();
        let index = output
            .files()
            .iter()
            .find(|f| f.path.as_str() == "index.html")
            .unwrap();
        assert_eq!(read_collected(&output.root, index).unwrap(), b"<h1>hi</h1>");
    }

    #[tokio::test]
    async fn uploads_what_it_collected() {
        let (_ws, dist) = output();
        symlink("index.html", dist.join("inside.html")).unwrap();
        let store = tempfile::tempdir().unwrap();
        let artifacts = Artifacts::new(Arc::new(kiln_shared::store::FsStore::new(
            store.path().to_owned(),
        )));
        let output = collect(open(&dist), LIMITS, &["node_modules"]).unwrap();
        let (manifest, new_blobs) = upload(&artifacts, output).await.unwrap();
        let mut files: Vec<&str> = manifest.files.keys().map(String::as_str).collect();
        files.sort();
        assert_eq!(
            files,
            ["index.html", "inside.html", "sub/a.txt", "sub/node_modules/b.js"]
        );
        assert!(new_blobs >= 3, "{new_blobs}");
        let entry = &manifest.files["inside.html"];
        assert_eq!(&artifacts.read(entry).await.unwrap()[..], b"<h1>hi</h1>");
    }
}
