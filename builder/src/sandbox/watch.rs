//! Watching a running step against its build's limits: the first limit passed is a [`Breach`],
//! which stops the step (its whole process tree is killed) and fails the build naming it.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use kiln_shared::config::SandboxSettings;

use super::cgroup::BuildCgroup;
use crate::log::BuildLog;

/// How often the cgroup's counters (or, without one, the processes' memory) are read.
const POLL: Duration = Duration::from_millis(100);
/// How often the workspace's disk usage is measured (a walk of the tree).
const DISK_EVERY: Duration = Duration::from_secs(2);
/// A build that prints this many times the stored log's cap is stopped: the stored log was
/// cut long before, and what it prints now only costs CPU.
pub const LOG_KILL_FACTOR: u64 = 16;

const MB: u64 = 1024 * 1024;

/// A limit a build passed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Breach {
    #[error("memory limit {mb} MB exceeded")]
    Memory { mb: u64 },
    #[error("CPU limit {secs} s exceeded")]
    Cpu { secs: u64 },
    /// Seen by the cgroup's accounting, `used_ms` of CPU when it was seen.
    #[error("CPU limit {secs} s exceeded ({used_ms} ms of CPU used when seen)")]
    CpuMeasured { secs: u64, used_ms: u64 },
    #[error("process limit {max} exceeded: the build started too many processes or threads")]
    Procs { max: u64 },
    #[error("disk limit {mb} MB exceeded: the build wrote too much into its workspace")]
    Disk { mb: u64 },
    #[error("log limit {kb} KB exceeded: the build printed more than {factor} times that")]
    Log { kb: u64, factor: u64 },
}

/// What one step is watched with.
pub struct Watch<'a> {
    pub limits: &'a SandboxSettings,
    pub cgroup: Option<&'a BuildCgroup>,
    /// The step's first process (without a cgroup, its descendants are the build's).
    pub root_pid: Option<i32>,
    /// Measured for the disk limit.
    pub workspace: &'a Path,
    pub log: &'a BuildLog,
    pub max_log_bytes: u64,
    /// The uid the build runs as: what it owns in the workspace counts towards the disk limit,
    /// however linked (see [`disk_usage`]).
    pub owner: Option<u32>,
}

impl Watch<'_> {
    /// Returns the first limit passed; never returns while the step keeps to its limits.
    pub async fn first_breach(&self) -> Breach {
        let mut next_disk = tokio::time::Instant::now() + DISK_EVERY;
        loop {
            tokio::time::sleep(POLL).await;
            if let Some(breach) = self.counters() {
                return breach;
            }
            if tokio::time::Instant::now() >= next_disk {
                if let Some(breach) = self.disk().await {
                    return breach;
                }
                next_disk = tokio::time::Instant::now() + DISK_EVERY;
            }
        }
    }

    /// After the step ended by itself with a failure: the limit that made it fail, if one
    /// did (the kernel killed a process for memory, a fork was refused, a file hit the size
    /// limit or a process its CPU limit).
    pub async fn after_failure(&self, status: &ExitStatus) -> Option<Breach> {
        use std::os::unix::process::ExitStatusExt;
        if let Some(breach) = self.counters() {
            return Some(breach);
        }
        let signal = status
            .signal()
            .or_else(|| status.code().filter(|c| *c > 128).map(|c| c - 128));
        let tail = self.log.tail(5);
        if signal == Some(nix::sys::signal::Signal::SIGXCPU as i32) || tail.contains("SIGXCPU") {
            return Some(Breach::Cpu {
                secs: self.limits.cpu_secs,
            });
        }
        if signal == Some(nix::sys::signal::Signal::SIGXFSZ as i32) || tail.contains("SIGXFSZ") {
            return Some(Breach::Disk {
                mb: self.limits.disk_mb,
            });
        }
        self.disk().await
    }

    fn counters(&self) -> Option<Breach> {
        let limits = self.limits;
        if self.log.printed() > LOG_KILL_FACTOR * self.max_log_bytes {
            return Some(Breach::Log {
                kb: self.max_log_bytes / 1024,
                factor: LOG_KILL_FACTOR,
            });
        }
        match self.cgroup {
            Some(cgroup) => {
                let usage = cgroup.usage();
                if usage.oom_kills > 0 {
                    return Some(Breach::Memory { mb: limits.memory_mb });
                }
                if usage.pids_refused > 0 {
                    return Some(Breach::Procs {
                        max: limits.max_procs,
                    });
                }
                if usage.cpu_ns > limits.cpu_secs * 1_000_000_000 {
                    return Some(Breach::CpuMeasured {
                        secs: limits.cpu_secs,
                        used_ms: usage.cpu_ns / 1_000_000,
                    });
                }
            }
            None => {
                let rss = self.root_pid.map(tree_rss).unwrap_or(0);
                if rss > limits.memory_mb * MB {
                    return Some(Breach::Memory { mb: limits.memory_mb });
                }
            }
        }
        None
    }

    async fn disk(&self) -> Option<Breach> {
        let root = self.workspace.to_owned();
        let owner = self.owner;
        let used = tokio::task::spawn_blocking(move || disk_usage(&root, owner))
            .await
            .unwrap_or(0);
        (used >= self.limits.disk_mb * MB).then_some(Breach::Disk {
            mb: self.limits.disk_mb,
        })
    }
}

/// Bytes on disk under `root` (walked without following links), each inode counted once.
/// With an `owner`, every inode that uid owns counts, files, folders and links alike, however
/// many times it is hard-linked, and nothing owned by others (the pnpm store's files linked in).
/// Without one, files linked once only (a file also linked from elsewhere, the store's, is not
/// counted; nor, then, one the build linked twice itself).
pub fn disk_usage(root: &Path, owner: Option<u32>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| match owner {
            Some(uid) => m.uid() == uid,
            None => !m.is_dir() && m.nlink() == 1,
        })
        .filter(|m| seen.insert((m.dev(), m.ino())))
        .map(|m| m.blocks() * 512)
        .sum()
}

/// Resident memory of `root` and all its descendants, in bytes.
pub fn tree_rss(root: i32) -> u64 {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    // (pid, parent, resident pages)
    let procs: Vec<(i32, i32, u64)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/stat"))).ok()?;
            // `pid (command) state ppid …`: the command may hold spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some((pid, fields.get(1)?.parse().ok()?, fields.get(21)?.parse().ok()?))
        })
        .collect();
    let mut members = vec![root];
    let mut total = 0;
    let mut i = 0;
    while i < members.len() {
        let parent = members[i];
        for &(pid, ppid, rss) in &procs {
            if pid == parent {
                total += rss * page;
            }
            if ppid == parent && !members.contains(&pid) {
                members.push(pid);
            }
        }
        i += 1;
    }
    total
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn this_process_has_resident_memory_and_a_dead_pid_none() {
        let me = std::process::id() as i32;
        assert!(tree_rss(me) > MB, "{}", tree_rss(me));
        assert_eq!(tree_rss(i32::MAX), 0);
    }

    #[test]
    fn disk_usage_counts_own_files_but_not_hard_links_shared_with_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        std::fs::write(ws.join("own.bin"), vec![1u8; 1024 * 1024]).unwrap();
        let store = dir.path().join("store.bin");
        std::fs::write(&store, vec![2u8; 2 * 1024 * 1024]).unwrap();
        std::fs::hard_link(&store, ws.join("linked.bin")).unwrap();
        let used = disk_usage(&ws, None);
        assert!((1024 * 1024..2 * 1024 * 1024).contains(&used), "{used}");

        // Owned by the build's uid: its own files count once however linked, the store's not.
        if !nix::unistd::geteuid().is_root() {
            eprintln!("not root: the owner's rule is not tested (it needs chown)");
            return;
        }
        let uid = 65_123;
        let chown = |path: &Path| std::os::unix::fs::lchown(path, Some(uid), None).unwrap();
        chown(&ws.join("own.bin"));
        let big = ws.join("big.bin");
        std::fs::write(&big, vec![3u8; 4 * 1024 * 1024]).unwrap();
        chown(&big);
        std::fs::create_dir(ws.join("sub")).unwrap();
        for link in ["big2.bin", "sub/big3.bin"] {
            std::fs::hard_link(&big, ws.join(link)).unwrap();
        }
        assert_eq!(std::fs::metadata(&big).unwrap().nlink(), 3);
        std::os::unix::fs::symlink(&store, ws.join("sub/to-store")).unwrap();
        let blocks = |path: &Path| std::fs::symlink_metadata(path).unwrap().blocks() * 512;
        let owned = disk_usage(&ws, Some(uid));
        assert_eq!(owned, blocks(&ws.join("own.bin")) + blocks(&big), "{owned}");
        assert!(owned >= 5 * 1024 * 1024, "{owned}");
        // Without an owner the rule is the old one: no file linked more than once counts.
        assert_eq!(disk_usage(&ws, None), used);
        // Others' files do not count, and a folder the build owns does.
        chown(&ws.join("sub"));
        assert_eq!(
            disk_usage(&ws, Some(uid)),
            owned + blocks(&ws.join("sub")),
            "folders count"
        );
        assert_eq!(disk_usage(&ws, Some(uid + 1)), 0);
    }
}
