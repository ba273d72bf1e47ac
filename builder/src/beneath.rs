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

/// Opens the folder `rel` beneath `dirfd` through no link at all: a folder a process is then
/// run in by its path (a build's app folder), where a link anywhere on the way is refused
/// ([`BeneathError::Link`]), whether it stays inside or not.
pub fn open_dir_through_no_link(dirfd: impl AsFd, rel: impl AsRef<Path>) -> Result<OwnedFd, BeneathError> {
    let (dirfd, rel) = (dirfd.as_fd(), rel.as_ref());
    plain_names(rel)?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    open2(dirfd, rel, flags, Mode::empty(), WRITE_RESOLVE).map_err(|e| match e {
        Errno::LOOP => BeneathError::Link { path: shown(rel) },
        Errno::NOTDIR => match rfs::statat(dirfd, rel, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if file_type(&st) == FileType::Symlink => BeneathError::Link { path: shown(rel) },
            st => BeneathError::NotDir {
                path: shown(rel),
                kind: st.map(|st| kind_of(file_type(&st))).unwrap_or("something else"),
            },
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
mod tests;
