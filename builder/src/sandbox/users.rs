//! Build users: every build runs as a uid that no other build on this host holds while it runs
//! (`KILN_BUILD_UIDS`), so builds running side by side cannot signal, trace, read or write each
//! other, whatever daemon runs them.
//!
//! A uid is held by an exclusive lock on `<lock dir>/<uid>`, a folder only root can enter: the
//! lock is the kernel's, so it is shared by every daemon on the host and let go when the holder
//! ends, even by a crash. The group of a build is the number of its uid.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use kiln_shared::config::BuildUids;

/// A uid (and its group) held for one build, until dropped.
#[derive(Debug)]
pub struct BuildUser {
    pub uid: u32,
    pub gid: u32,
    _held: File,
}

/// Why no uid could be held.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("every uid of KILN_BUILD_UIDS ({first}-{last}) is held by a running build on this host: widen the range")]
    Exhausted { first: u32, last: u32 },
    #[error("holding a build uid in {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The uids this host's builds take turns at.
#[derive(Debug)]
pub struct UidPool {
    uids: BuildUids,
    dir: PathBuf,
    /// Where the next search starts (the one after the last taken: a uid just let go is taken
    /// last, so nothing a finished build left can meet the next build of the same uid soon).
    next: AtomicU32,
}

impl UidPool {
    /// The pool of `uids`, locked in `dir` (made, root only).
    pub fn new(uids: BuildUids, dir: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(Self {
            uids,
            dir: dir.to_owned(),
            next: AtomicU32::new(rand_below(uids.count)),
        })
    }

    /// Where build uids are locked: under `/run` for a root daemon.
    pub fn default_dir() -> PathBuf {
        if Path::new("/run").is_dir() {
            PathBuf::from("/run/kiln-build-uids")
        } else {
            std::env::temp_dir().join("kiln-build-uids")
        }
    }

    /// Holds a uid no build on this host holds.
    pub fn lease(&self) -> Result<BuildUser, LeaseError> {
        let io = |source| LeaseError::Io {
            dir: self.dir.clone(),
            source,
        };
        let count = self.uids.count;
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
        for i in 0..count {
            let uid = self.uids.first + (start + i) % count;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(self.dir.join(uid.to_string()))
                .map_err(io)?;
            match file.try_lock() {
                Ok(()) => {
                    self.next.store((start + i + 1) % count, Ordering::Relaxed);
                    return Ok(BuildUser {
                        uid,
                        gid: uid,
                        _held: file,
                    });
                }
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        Err(LeaseError::Exhausted {
            first: self.uids.first,
            last: self.uids.first + count - 1,
        })
    }
}

/// A number below `n` that differs between daemons started together.
fn rand_below(n: u32) -> u32 {
    (ulid::Ulid::new().random() % u128::from(n.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_pools_on_one_host_never_hand_out_the_same_uid_and_a_uid_comes_back_when_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let uids = BuildUids {
            first: 300_000,
            count: 3,
        };
        // Two daemons' pools over the same range and lock folder.
        let a = UidPool::new(uids, dir.path()).unwrap();
        let b = UidPool::new(uids, dir.path()).unwrap();
        let one = a.lease().unwrap();
        let two = b.lease().unwrap();
        let three = a.lease().unwrap();
        let mut held = vec![one.uid, two.uid, three.uid];
        held.sort_unstable();
        assert_eq!(held, [300_000, 300_001, 300_002]);
        assert_eq!(one.gid, one.uid);
        let err = b.lease().unwrap_err();
        assert!(err.to_string().contains("300000-300002"), "{err}");
        let freed = two.uid;
        drop(two);
        assert_eq!(b.lease().unwrap().uid, freed);
    }
}
