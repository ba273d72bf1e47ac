//! Files the daemon (root) reads and writes inside a workspace that build code controlled.
//!
//! A build runs as an unprivileged user that owns its workspace: by the time the daemon looks
//! at `pnpm-lock.yaml`, `package.json` or the output folder, any of them may be a symbolic
//! link to `/proc/self/environ` or `/root`, a FIFO that blocks a reader forever, or a file of
//! gigabytes. Every path here is therefore resolved by the kernel beneath a folder the daemon
//! opened itself (`openat2` with `RESOLVE_BENEATH`): a link that stays inside is followed, one
//! that leaves fails; only regular files are read, never more than a bound; and writes follow
//! no link at all. Needs Linux 5.6 or later (`openat2`).

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Stat, Uid};
use rustix::io::Errno;

/// Why a path inside a workspace was not opened, read or written. Each message starts with the
/// path, relative to the folder it was looked up in.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    #[error("{path} is a symbolic link that leaves the project")]
    LinkOut { path: String },
    #[error("{path} is a symbolic link that Kiln cannot follow (a loop, or a link into /proc)")]
    LinkLoop { path: String },
    #[error("{path} is a symbolic link, which Kiln does not follow here")]
    Link { path: String },
    #[error("{path} is not a regular file ({kind})")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path} is not a folder ({kind})")]
    NotDir { path: String, kind: &'static str },
    #[error("{path} is larger than {}", shown_size(*limit))]
    TooLarge { path: String, limit: u64 },
    #[error("{path} does not exist")]
    Missing { path: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl BeneathError {
    /// The tree's fault (a link, a special file, a size over the bound, a missing file), not
    /// the machine's (an I/O error).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }

    /// The path the error is about.
    pub fn path(&self) -> &str {
        match self {
            Self::LinkOut { path }
            | Self::LinkLoop { path }
            | Self::Link { path }
            | Self::NotRegular { path, .. }
            | Self::NotDir { path, .. }
            | Self::TooLarge { path, .. }
            | Self::Missing { path }
            | Self::Io { path, .. } => path,
        }
    }

    fn io(path: &Path, source: impl Into<std::io::Error>) -> Self {
        Self::Io {
            path: shown(path),
            source: source.into(),
        }
    }
}

/// `n` in MB when it is at least one, else in bytes.
fn shown_size(n: u64) -> String {
    const MB: u64 = 1024 * 1024;
    match n {
        n if n >= MB && n % MB == 0 => format!("{} MB", n / MB),
        n if n >= MB => format!("{:.1} MB", n as f64 / MB as f64),
        n => format!("{n} bytes"),
    }
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// What a file is, for a message: "a FIFO", "a folder"...
pub fn kind_of(file_type: FileType) -> &'static str {
    match file_type {
        FileType::RegularFile => "a regular file",
        FileType::Directory => "a folder",
        FileType::Symlink => "a symbolic link",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Unknown => "an unknown kind of file",
    }
}

/// The type of a file from its `stat`.
pub fn file_type(stat: &Stat) -> FileType {
    FileType::from_raw_mode(stat.st_mode)
}

/// How links are resolved when reading: inside the folder only, never through `/proc`'s magic
/// links.
const READ_RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);
/// How paths are resolved when writing: inside the folder, and through no link at all.
const WRITE_RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS);

/// `openat2`, again while the kernel says a concurrent rename kept it from telling whether a
/// `..` stayed inside (`EAGAIN`, which `RESOLVE_BENEATH` may return under attack).
fn open2(
    dirfd: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlags,
    mode: Mode,
    resolve: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    let mut tries = 0;
    loop {
        match rfs::openat2(dirfd, rel, flags, mode, resolve) {
            Err(Errno::AGAIN) if tries < 16 => tries += 1,
            result => return result,
        }
    }
}

/// The error for an `openat2` beneath a folder that failed with `errno`.
fn refused(rel: &Path, errno: Errno) -> BeneathError {
    let path = shown(rel);
    match errno {
        Errno::XDEV => BeneathError::LinkOut { path },
        Errno::LOOP => BeneathError::LinkLoop { path },
        Errno::NOENT => BeneathError::Missing { path },
        e => BeneathError::io(rel, e),
    }
}

/// `rel` must be a relative path (it may go through links and `..` that stay inside).
fn relative(rel: &Path) -> Result<(), BeneathError> {
    if rel.as_os_str().is_empty() || rel.is_absolute() {
        return Err(BeneathError::io(
            rel,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a relative path inside the folder",
            ),
        ));
    }
    Ok(())
}

/// The components of `rel`, each a plain name (no `.`, `..` or root).
fn plain_names(rel: &Path) -> Result<Vec<&OsStr>, BeneathError> {
    let mut names = Vec::new();
    for component in rel.components() {
        match component {
            Component::Normal(name) => names.push(name),
            _ => {
                return Err(BeneathError::io(
                    rel,
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "a path to write must hold plain names only",
                    ),
                ))
            }
        }
    }
    if names.is_empty() {
        return Err(BeneathError::io(
            rel,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "an empty path"),
        ));
    }
    Ok(names)
}

/// Opens the folder `name` of `parent`: `parent` is trusted (the daemon's own path, links on
/// it are followed), `name` is one component that must be a folder itself, not a link to one
/// (the build user owns `parent` and could have put a link there).
pub fn open_dir(parent: &Path, name: &str) -> Result<OwnedFd, BeneathError> {
    let rel = Path::new(name);
    let names = plain_names(rel)?;
    if names.len() != 1 {
        return Err(BeneathError::io(
            rel,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a single name"),
        ));
    }
    let parent_fd = rfs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| BeneathError::io(parent, e))?;
    open_subdir(parent_fd.as_fd(), rel, rel)
}

/// Opens the folder at `path` with [`open_dir`]: every component but the last is trusted, the
/// last must be a folder itself (a workspace's `project`, which the build's user could have
/// replaced by a link).
pub fn open_dir_path(path: &Path) -> Result<OwnedFd, BeneathError> {
    match (path.parent(), path.file_name().and_then(OsStr::to_str)) {
        (Some(parent), Some(name)) => open_dir(parent, name),
        _ => Err(BeneathError::Missing { path: shown(path) }),
    }
}

/// Opens the folder `name` (one component) of `dirfd`, following no link; `shown` names it in
/// errors.
fn open_subdir(dirfd: BorrowedFd<'_>, name: &Path, shown: &Path) -> Result<OwnedFd, BeneathError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    open2(dirfd, name, flags, Mode::empty(), WRITE_RESOLVE).map_err(|e| match e {
        Errno::LOOP => BeneathError::Link {
            path: self::shown(shown),
        },
        // O_NOFOLLOW | O_DIRECTORY on a link: ENOTDIR, not ELOOP.
        Errno::NOTDIR => match rfs::statat(dirfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if file_type(&st) == FileType::Symlink => BeneathError::Link {
                path: self::shown(shown),
            },
            st => BeneathError::NotDir {
                path: self::shown(shown),
                kind: st.map(|st| kind_of(file_type(&st))).unwrap_or("something else"),
            },
        },
        e => refused(shown, e),
    })
}

/// Opens the folder `rel` beneath `dirfd`: links that stay inside are followed; an absolute
/// link, or one that leaves `dirfd`'s tree, fails ([`BeneathError::LinkOut`]).
pub fn open_dir_beneath(dirfd: impl AsFd, rel: impl AsRef<Path>) -> Result<OwnedFd, BeneathError> {
    let (dirfd, rel) = (dirfd.as_fd(), rel.as_ref());
    relative(rel)?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    open2(dirfd, rel, flags, Mode::empty(), READ_RESOLVE).map_err(|e| match e {
        Errno::NOTDIR => BeneathError::NotDir {
            path: shown(rel),
            kind: stat_beneath(dirfd, rel)
                .map(|st| kind_of(file_type(&st)))
                .unwrap_or("something else"),
        },
        e => refused(rel, e),
    })
}

/// The `stat` of what `rel` beneath `dirfd` is, links inside followed (nothing is opened for
/// reading: `O_PATH`).
pub fn stat_beneath(dirfd: impl AsFd, rel: impl AsRef<Path>) -> Result<Stat, BeneathError> {
    let rel = rel.as_ref();
    relative(rel)?;
    let fd = open2(
        dirfd.as_fd(),
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        READ_RESOLVE,
    )
    .map_err(|e| refused(rel, e))?;
    rfs::fstat(&fd).map_err(|e| BeneathError::io(rel, e))
}

/// The bytes of the regular file `rel` beneath `dirfd`, at most `max_bytes` of them; `None`
/// when there is no such file. Links that stay inside are followed; a link that leaves, a
/// FIFO, a device, a socket or a folder is an error, and so is a file over `max_bytes` (which
/// is never read past its bound).
pub fn read_beneath(
    dirfd: impl AsFd,
    rel: impl AsRef<Path>,
    max_bytes: u64,
) -> Result<Option<Vec<u8>>, BeneathError> {
    let rel = rel.as_ref();
    let Some((fd, stat)) = open_regular_beneath(dirfd, rel)? else {
        return Ok(None);
    };
    let too_large = || BeneathError::TooLarge {
        path: shown(rel),
        limit: max_bytes,
    };
    if u64::try_from(stat.st_size).unwrap_or(0) > max_bytes {
        return Err(too_large());
    }
    let body = read_at_most(fd, &stat, rel, max_bytes)?;
    if body.len() as u64 > max_bytes {
        return Err(too_large()); // it grew while read
    }
    Ok(Some(body))
}

/// The regular file `rel` beneath `dirfd`, opened for reading, and its `stat`; `None` when
/// there is no such file. Links that stay inside are followed; a link that leaves, a FIFO (never
/// waited for), a device, a socket or a folder is an error.
pub fn open_regular_beneath(
    dirfd: impl AsFd,
    rel: impl AsRef<Path>,
) -> Result<Option<(OwnedFd, Stat)>, BeneathError> {
    let rel = rel.as_ref();
    relative(rel)?;
    // O_NONBLOCK: opening a FIFO does not wait for a writer (and the fstat below refuses it).
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = match open2(dirfd.as_fd(), rel, flags, Mode::empty(), READ_RESOLVE) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        // A socket cannot be opened: say what it is.
        Err(Errno::NXIO) => {
            return Err(match stat_beneath(dirfd.as_fd(), rel) {
                Ok(stat) => BeneathError::NotRegular {
                    path: shown(rel),
                    kind: kind_of(file_type(&stat)),
                },
                Err(e) => e,
            })
        }
        Err(e) => return Err(refused(rel, e)),
    };
    let stat = rfs::fstat(&fd).map_err(|e| BeneathError::io(rel, e))?;
    let kind = file_type(&stat);
    if kind != FileType::RegularFile {
        return Err(BeneathError::NotRegular {
            path: shown(rel),
            kind: kind_of(kind),
        });
    }
    Ok(Some((fd, stat)))
}

/// The bytes of the file open at `fd` (`stat` is its), at most `max_bytes + 1` of them, so a
/// caller can tell the file grew past its bound while read.
pub fn read_at_most(fd: OwnedFd, stat: &Stat, rel: &Path, max_bytes: u64) -> Result<Vec<u8>, BeneathError> {
    let size = u64::try_from(stat.st_size).unwrap_or(0).min(max_bytes);
    let mut body = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    std::fs::File::from(fd)
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut body)
        .map_err(|e| BeneathError::io(rel, e))?;
    Ok(body)
}

/// Writes `bytes` to `rel` beneath `dirfd`, owned by `owner` (uid, gid) when given. Missing
/// folders on the way are made (owned by `owner` too), one at a time; a symbolic link anywhere
/// on the way is an error, never followed. A regular file already at `rel` is replaced, not
/// written through (it may be a hard link to a file elsewhere); anything else there (a link, a
/// folder, a FIFO) is an error.
pub fn write_beneath(
    dirfd: impl AsFd,
    rel: impl AsRef<Path>,
    bytes: &[u8],
    owner: Option<(u32, u32)>,
) -> Result<(), BeneathError> {
    let (dirfd, rel) = (dirfd.as_fd(), rel.as_ref());
    let names = plain_names(rel)?;
    let (file_name, folders) = names.split_last().expect("plain_names is never empty");
    let chown = |fd: BorrowedFd<'_>, path: &Path| match owner {
        Some((uid, gid)) => rfs::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(|e| BeneathError::io(path, e)),
        None => Ok(()),
    };

    let mut here: Option<OwnedFd> = None;
    let mut walked = PathBuf::new();
    for name in folders {
        walked.push(name);
        let at = here.as_ref().map_or(dirfd, |fd| fd.as_fd());
        let name = Path::new(name);
        let made = match rfs::mkdirat(at, name, Mode::from_raw_mode(0o755)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(e) => return Err(BeneathError::io(&walked, e)),
        };
        let folder = open_subdir(at, name, &walked)?;
        if made {
            chown(folder.as_fd(), &walked)?;
        }
        here = Some(folder);
    }

    let at = here.as_ref().map_or(dirfd, |fd| fd.as_fd());
    let name = Path::new(file_name);
    let flags = OFlags::WRONLY
        | OFlags::CREATE
        | OFlags::EXCL
        | OFlags::NOFOLLOW
        | OFlags::NONBLOCK
        | OFlags::NOCTTY
        | OFlags::CLOEXEC;
    let mut tries = 0;
    let fd = loop {
        match rfs::statat(at, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => match file_type(&stat) {
                FileType::RegularFile => rfs::unlinkat(at, name, AtFlags::empty())
                    .or_else(|e| if e == Errno::NOENT { Ok(()) } else { Err(e) })
                    .map_err(|e| BeneathError::io(rel, e))?,
                FileType::Symlink => return Err(BeneathError::Link { path: shown(rel) }),
                other => {
                    return Err(BeneathError::NotRegular {
                        path: shown(rel),
                        kind: kind_of(other),
                    })
                }
            },
            Err(Errno::NOENT) => {}
            Err(e) => return Err(BeneathError::io(rel, e)),
        }
        // O_EXCL: whatever appeared at the name since (a link) fails the open, never followed.
        match open2(at, name, flags, Mode::from_raw_mode(0o644), WRITE_RESOLVE) {
            Ok(fd) => break fd,
            Err(Errno::EXIST) if tries < 8 => tries += 1,
            Err(Errno::LOOP) => return Err(BeneathError::Link { path: shown(rel) }),
            Err(e) => return Err(BeneathError::io(rel, e)),
        }
    };
    chown(fd.as_fd(), rel)?;
    std::fs::File::from(fd)
        .write_all(bytes)
        .map_err(|e| BeneathError::io(rel, e))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::time::Duration;

    use super::*;

    fn dir_fd(path: &Path) -> OwnedFd {
        rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    /// A project folder inside a workspace folder, with `secret.txt` beside the project.
    fn workspace() -> (tempfile::TempDir, PathBuf) {
        let ws = tempfile::tempdir().unwrap();
        let project = ws.path().join("project");
        std::fs::create_dir(&project).unwrap();
        std::fs::write(ws.path().join("secret.txt"), "secret").unwrap();
        (ws, project)
    }

    /// Runs `f` on another thread and fails the test if it has not returned in 10 s (a FIFO
    /// opened the wrong way blocks forever).
    fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("did not return within 10 s: it blocked")
    }

    #[test]
    fn reads_regular_files_and_says_when_one_is_absent() {
        let (_ws, project) = workspace();
        std::fs::create_dir(project.join("sub")).unwrap();
        std::fs::write(project.join("sub/a.txt"), "hello").unwrap();
        let fd = dir_fd(&project);
        assert_eq!(read_beneath(&fd, "sub/a.txt", 100).unwrap().unwrap(), b"hello");
        assert!(read_beneath(&fd, "nothing.txt", 100).unwrap().is_none());
        // Exactly at the bound is fine.
        assert_eq!(read_beneath(&fd, "sub/a.txt", 5).unwrap().unwrap(), b"hello");
    }

    #[test]
    fn links_that_leave_are_refused_and_links_inside_are_followed() {
        let (_ws, project) = workspace();
        std::fs::write(project.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::create_dir(project.join("deep")).unwrap();
        symlink("/etc/passwd", project.join("passwd")).unwrap();
        symlink("/proc/self/environ", project.join("pnpm-lock.yaml")).unwrap();
        symlink("../../secret.txt", project.join("deep/up")).unwrap();
        symlink("../secret.txt", project.join("up")).unwrap();
        symlink("../index.html", project.join("deep/inside.html")).unwrap();
        let fd = dir_fd(&project);

        for (rel, path) in [
            ("passwd", "passwd"),
            ("pnpm-lock.yaml", "pnpm-lock.yaml"),
            ("deep/up", "deep/up"),
            ("up", "up"),
        ] {
            let err = read_beneath(&fd, rel, 1 << 20).unwrap_err();
            assert!(matches!(&err, BeneathError::LinkOut { .. }), "{rel}: {err:?}");
            assert_eq!(
                err.to_string(),
                format!("{path} is a symbolic link that leaves the project")
            );
            assert!(err.is_refusal());
        }
        assert_eq!(
            read_beneath(&fd, "deep/inside.html", 100).unwrap().unwrap(),
            b"<h1>hi</h1>"
        );
        // An absolute path is no way out either.
        assert!(read_beneath(&fd, "/etc/passwd", 1 << 20).is_err());
    }

    #[test]
    fn a_link_into_proc_is_refused() {
        let (_ws, project) = workspace();
        let fd = dir_fd(&project);
        // Inside the folder, a link to a folder that holds /proc's magic links.
        symlink("/proc/self", project.join("me")).unwrap();
        let err = read_beneath(&fd, "me/environ", 1 << 20).unwrap_err();
        assert!(matches!(err, BeneathError::LinkOut { .. }), "{err:?}");
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let (_ws, project) = workspace();
        nix::unistd::mkfifo(
            &project.join("pnpm-lock.yaml"),
            nix::sys::stat::Mode::from_bits_truncate(0o666),
        )
        .unwrap();
        let err = promptly(move || {
            let fd = dir_fd(&project);
            read_beneath(&fd, "pnpm-lock.yaml", 1 << 20).unwrap_err()
        });
        assert_eq!(err.to_string(), "pnpm-lock.yaml is not a regular file (a FIFO)");
    }

    #[test]
    fn a_device_a_folder_and_a_socket_are_not_read() {
        let (_ws, project) = workspace();
        std::fs::create_dir(project.join("package.json")).unwrap();
        symlink("/dev/zero", project.join("zero")).unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(project.join("sock")).unwrap();
        let fd = dir_fd(&project);
        assert_eq!(
            read_beneath(&fd, "package.json", 1 << 20)
                .unwrap_err()
                .to_string(),
            "package.json is not a regular file (a folder)"
        );
        // A link to a device leaves the folder; the socket cannot even be opened.
        assert!(matches!(
            read_beneath(&fd, "zero", 1 << 20).unwrap_err(),
            BeneathError::LinkOut { .. }
        ));
        assert_eq!(
            read_beneath(&fd, "sock", 1 << 20).unwrap_err().to_string(),
            "sock is not a regular file (a socket)"
        );
    }

    #[test]
    fn a_file_over_the_bound_is_refused_and_not_read_whole() {
        let (_ws, project) = workspace();
        std::fs::write(project.join("pnpm-lock.yaml"), vec![b'x'; 3 * 1024 * 1024]).unwrap();
        std::fs::write(project.join("small"), vec![b'x'; 11]).unwrap();
        let fd = dir_fd(&project);
        assert_eq!(
            read_beneath(&fd, "pnpm-lock.yaml", 2 * 1024 * 1024)
                .unwrap_err()
                .to_string(),
            "pnpm-lock.yaml is larger than 2 MB"
        );
        assert_eq!(
            read_beneath(&fd, "small", 10).unwrap_err().to_string(),
            "small is larger than 10 bytes"
        );
    }

    #[test]
    fn open_dir_does_not_follow_a_link_where_the_project_was() {
        let (ws, project) = workspace();
        assert!(open_dir(ws.path(), "project").is_ok());
        std::fs::remove_dir(&project).unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        symlink(elsewhere.path(), &project).unwrap();
        let err = open_dir(ws.path(), "project").unwrap_err();
        assert!(matches!(err, BeneathError::Link { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "project is a symbolic link, which Kiln does not follow here"
        );
        std::fs::remove_file(&project).unwrap();
        std::fs::write(&project, "").unwrap();
        assert_eq!(
            open_dir(ws.path(), "project").unwrap_err().to_string(),
            "project is not a folder (a regular file)"
        );
        assert!(open_dir(ws.path(), "../x").is_err());
        assert!(open_dir(ws.path(), "a/b").is_err());
    }

    #[test]
    fn open_dir_beneath_follows_links_inside_only() {
        let (ws, project) = workspace();
        std::fs::create_dir_all(project.join("build/out")).unwrap();
        std::fs::write(project.join("build/out/index.html"), "x").unwrap();
        symlink("build/out", project.join("dist")).unwrap();
        symlink("/root", project.join("out")).unwrap();
        symlink("../../", project.join("public")).unwrap();
        std::fs::create_dir(ws.path().join("other")).unwrap();
        symlink("../other", project.join("up")).unwrap();
        let fd = dir_fd(&project);
        let dist = open_dir_beneath(&fd, "dist").unwrap();
        assert_eq!(read_beneath(&dist, "index.html", 10).unwrap().unwrap(), b"x");
        for name in ["out", "public", "up"] {
            let err = open_dir_beneath(&fd, name).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{name} is a symbolic link that leaves the project")
            );
        }
        assert_eq!(
            open_dir_beneath(&fd, "build/out/index.html")
                .unwrap_err()
                .to_string(),
            "build/out/index.html is not a folder (a regular file)"
        );
        assert!(matches!(
            open_dir_beneath(&fd, "nothing").unwrap_err(),
            BeneathError::Missing { .. }
        ));
    }

    #[test]
    fn writes_make_folders_and_follow_no_link() {
        let (ws, project) = workspace();
        let fd = dir_fd(&project);
        write_beneath(&fd, "src/deep/App.tsx", b"export {}", None).unwrap();
        assert_eq!(
            std::fs::read(project.join("src/deep/App.tsx")).unwrap(),
            b"export {}"
        );
        // Replacing a file replaces it.
        write_beneath(&fd, "src/deep/App.tsx", b"v2", None).unwrap();
        assert_eq!(std::fs::read(project.join("src/deep/App.tsx")).unwrap(), b"v2");

        // A folder on the way replaced by a link (to outside, or even inside): refused.
        let outside = ws.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::remove_dir_all(project.join("src/deep")).unwrap();
        symlink(&outside, project.join("src/deep")).unwrap();
        let err = write_beneath(&fd, "src/deep/App.tsx", b"pwned", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "src/deep is a symbolic link, which Kiln does not follow here"
        );
        std::fs::create_dir(project.join("lib")).unwrap();
        symlink("lib", project.join("alias")).unwrap();
        assert!(matches!(
            write_beneath(&fd, "alias/x.js", b"", None).unwrap_err(),
            BeneathError::Link { .. }
        ));
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());

        // The file itself a link: refused, the target untouched.
        symlink(ws.path().join("secret.txt"), project.join("index.html")).unwrap();
        assert_eq!(
            write_beneath(&fd, "index.html", b"pwned", None)
                .unwrap_err()
                .to_string(),
            "index.html is a symbolic link, which Kiln does not follow here"
        );
        assert_eq!(std::fs::read(ws.path().join("secret.txt")).unwrap(), b"secret");

        // A hard link to a file outside is replaced, not written through.
        std::fs::hard_link(ws.path().join("secret.txt"), project.join("hard.txt")).unwrap();
        write_beneath(&fd, "hard.txt", b"mine", None).unwrap();
        assert_eq!(std::fs::read(project.join("hard.txt")).unwrap(), b"mine");
        assert_eq!(std::fs::read(ws.path().join("secret.txt")).unwrap(), b"secret");

        // A FIFO where the file goes: refused at once, not waited on.
        nix::unistd::mkfifo(
            &project.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o666),
        )
        .unwrap();
        let err = promptly(move || write_beneath(dir_fd(&project), "fifo", b"x", None).unwrap_err());
        assert_eq!(err.to_string(), "fifo is not a regular file (a FIFO)");

        // Paths that are no plain names.
        assert!(write_beneath(&fd, "../escape", b"", None).is_err());
        assert!(write_beneath(&fd, "/tmp/escape", b"", None).is_err());
        assert!(!ws.path().join("escape").exists());
    }

    #[test]
    fn written_files_and_made_folders_belong_to_the_owner() {
        use std::os::unix::fs::MetadataExt;
        let (_ws, project) = workspace();
        let fd = dir_fd(&project);
        if !nix::unistd::geteuid().is_root() {
            return; // only root can give files away
        }
        write_beneath(&fd, "a/b/c.txt", b"x", Some((4242, 4343))).unwrap();
        for path in ["a", "a/b", "a/b/c.txt"] {
            let meta = std::fs::symlink_metadata(project.join(path)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (4242, 4343), "{path}");
        }
    }
}
