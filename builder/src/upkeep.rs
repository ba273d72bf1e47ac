//! `kiln-builder maintain`: the builder host's own upkeep, run by its timer. It prunes the pnpm
//! store (`pnpm store prune`), bounds it (`KILN_PNPM_STORE_MAX_MB`: a store still larger after
//! the prune is emptied, and the next installs fill it again from the registry), removes
//! workspaces left behind by crashed builds, and removes projects' warm dependency trees not used
//! for a week (all of them when it empties the store: their links would keep its files on disk;
//! see [`crate::deps`]).
//!
//! It never runs while a build uses the store. Two lock files in the work folder coordinate it
//! with every daemon on the host (`flock`, so a process that dies releases its locks):
//!
//! - `.kiln-upkeep-pause`: held exclusively by `maintain` for its whole run. A daemon's workers
//!   do not claim a build while it is held (they try a shared lock before each claim).
//! - `.kiln-store.lock`: held shared by every build for its whole run, exclusively by
//!   `maintain` while it works. So `maintain` first stops new claims, then waits for the builds
//!   running to end, then works; a build claimed in the instant between waits for it.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The pause file (see the module's doc).
const PAUSE: &str = ".kiln-upkeep-pause";
/// The store lock file (see the module's doc).
const STORE_LOCK: &str = ".kiln-store.lock";
/// How often a waiting lock is tried again.
const RETRY: Duration = Duration::from_millis(200);

/// Opens a lock file, made root's alone (no build, nor the store's user, may open it to hold
/// the lock and so stop the host from claiming). A file made before that rule has its mode
/// set by the next `maintain` run ([`Upkeep::run`]), not on every claim.
fn open(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// True while a `maintain` run holds the pause: workers do not claim builds meanwhile.
pub fn paused(work_dir: &Path) -> bool {
    let Ok(file) = open(&work_dir.join(PAUSE)) else {
        return false;
    };
    matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
}

/// A build's use of the store: a shared lock held until dropped.
#[derive(Debug)]
pub struct StoreUse(#[allow(dead_code)] File);

impl StoreUse {
    /// Waits (without blocking a thread) until no `maintain` run holds the store.
    pub async fn acquire(work_dir: &Path) -> std::io::Result<Self> {
        let file = open(&work_dir.join(STORE_LOCK))?;
        let mut said = false;
        loop {
            match file.try_lock_shared() {
                Ok(()) => return Ok(Self(file)),
                Err(TryLockError::WouldBlock) => {
                    if !said {
                        tracing::info!("the host's upkeep holds the pnpm store: the build waits");
                        said = true;
                    }
                    tokio::time::sleep(RETRY).await;
                }
                Err(TryLockError::Error(e)) => return Err(e),
            }
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpkeepReport {
    /// Time spent waiting for running builds to end.
    pub waited_ms: u64,
    pub store_bytes_before: u64,
    pub store_bytes_after: u64,
    /// `pnpm store prune` succeeded.
    pub pruned: bool,
    /// The store was still over its bound after the prune, and was emptied.
    pub emptied: bool,
    /// Workspaces of crashed builds removed, and their bytes.
    pub workspaces_removed: u64,
    pub workspace_bytes_freed: u64,
    /// Projects' warm dependency trees removed (unused for a week, or all with the store).
    pub dep_trees_removed: u64,
    pub millis: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UpkeepError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("builds still running after {0:?}: not run (try again later, or with a longer --wait)")]
    Busy(Duration),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> UpkeepError {
    let what = what.into();
    move |source| UpkeepError::Io { what, source }
}

/// What a run works on.
#[derive(Debug, Clone)]
pub struct Upkeep {
    pub work_dir: PathBuf,
    pub pnpm_store: PathBuf,
    /// The store's bound, in bytes.
    pub store_max: u64,
    /// How long to wait for running builds.
    pub wait: Duration,
    /// The store's user (`uid`, `gid`), who runs `pnpm store prune` when the upkeep runs as
    /// root: root never runs pnpm over a tree another user wrote.
    pub store_user: Option<(u32, u32)>,
}

impl Upkeep {
    /// One run (blocking: call it from a blocking thread or a plain `main`).
    pub fn run(&self) -> Result<UpkeepReport, UpkeepError> {
        let started = Instant::now();
        std::fs::create_dir_all(&self.work_dir)
            .map_err(io(format!("creating {}", self.work_dir.display())))?;
        // 1. No new claims on this host.
        let pause = open(&self.work_dir.join(PAUSE)).map_err(io("opening the pause file"))?;
        pause.lock().map_err(io("taking the pause file"))?;
        // 2. The builds running end (they hold the store shared).
        let store = open(&self.work_dir.join(STORE_LOCK)).map_err(io("opening the store lock"))?;
        for file in [&pause, &store] {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io("making the lock files root's alone"))?;
        }
        loop {
            match store.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if started.elapsed() < self.wait => std::thread::sleep(RETRY),
                Err(TryLockError::WouldBlock) => return Err(UpkeepError::Busy(self.wait)),
                Err(TryLockError::Error(e)) => return Err(io("taking the store lock")(e)),
            }
        }
        let mut report = UpkeepReport {
            waited_ms: started.elapsed().as_millis() as u64,
            store_bytes_before: disk_usage(&self.pnpm_store),
            ..UpkeepReport::default()
        };
        tracing::info!(
            waited_ms = report.waited_ms,
            "no build uses the pnpm store: upkeep starts"
        );

        // 3. Workspaces: with the store held, no build of this host runs, so every workspace
        // is a crashed build's.
        for entry in std::fs::read_dir(&self.work_dir).map_err(io("listing the work folder"))? {
            let entry = entry.map_err(io("listing the work folder"))?;
            let name = entry.file_name();
            if !crate::workspace::is_workspace_name(&name.to_string_lossy()) {
                continue;
            }
            let bytes = disk_usage(&entry.path());
            std::fs::remove_dir_all(entry.path())
                .map_err(io(format!("removing {}", entry.path().display())))?;
            report.workspaces_removed += 1;
            report.workspace_bytes_freed += bytes;
        }

        // 4. The store: prune, then bound.
        if self.pnpm_store.exists() {
            let mut prune = match (self.store_user, nix::unistd::geteuid().is_root()) {
                (Some((uid, gid)), true) => {
                    let mut c = std::process::Command::new("setpriv");
                    c.args([
                        format!("--reuid={uid}"),
                        format!("--regid={gid}"),
                        "--clear-groups".into(),
                        "--".into(),
                        "pnpm".into(),
                    ]);
                    c
                }
                _ => std::process::Command::new("pnpm"),
            };
            let out = prune
                .args(["store", "prune", "--store-dir"])
                .arg(&self.pnpm_store)
                .env_clear()
                .env(
                    "PATH",
                    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
                )
                .env("HOME", self.work_dir.join(".kiln-store-home"))
                .env("CI", "true")
                .current_dir("/")
                .output();
            match out {
                Ok(o) if o.status.success() => report.pruned = true,
                Ok(o) => tracing::warn!(
                    status = %o.status,
                    stderr = %String::from_utf8_lossy(&o.stderr).trim(),
                    "pnpm store prune failed"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot run pnpm store prune"),
            }
            let size = disk_usage(&self.pnpm_store);
            if size > self.store_max {
                tracing::warn!(
                    bytes = size,
                    bound = self.store_max,
                    "the pnpm store is over its bound after the prune: emptied"
                );
                empty_dir(&self.pnpm_store).map_err(io(format!("emptying {}", self.pnpm_store.display())))?;
                report.emptied = true;
            } else {
                // Measured once after the prune (a large store takes a while to walk).
                report.store_bytes_after = size;
            }
        }
        // 5. Warm dependency trees: no build runs to restore one.
        report.dep_trees_removed = crate::deps::trim(&self.work_dir, crate::deps::UNUSED_FOR, report.emptied)
            .map_err(io("removing warm dependency trees"))? as u64;
        report.millis = started.elapsed().as_millis() as u64;
        // The locks go with their files.
        drop(store);
        drop(pause);
        Ok(report)
    }
}

/// Removes what `dir` holds, keeping `dir` itself (its owner and mode stay as the daemon set
/// them).
fn empty_dir(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// The bytes of the regular files under `dir`, a file with several hard links counted once
/// (pnpm links store files into workspaces). Unreadable entries are skipped.
pub(crate) fn disk_usage(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file() && (m.nlink() == 1 || seen.insert((m.dev(), m.ino()))))
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::disk_usage;

    #[test]
    fn disk_usage_counts_hard_linked_files_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![0u8; 234]).unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("sub/a-again")).unwrap();
        assert_eq!(disk_usage(dir.path()), 1234);
        assert_eq!(disk_usage(&dir.path().join("missing")), 0);
    }
}
