//! A build's own control group: its memory, process and CPU limits hold for all its processes
//! together, and what it used is read back to name the limit it passed.
//!
//! Both hierarchies are handled: cgroup v2 (one tree; the daemon moves itself into a leaf of
//! its own cgroup so it can give its builds sibling cgroups with controllers enabled) and v1
//! (a tree per controller: memory, pids, cpuacct). Builds' cgroups are made under the daemon's
//! own cgroup, so the limits of whatever runs the daemon (systemd, a container) still apply.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no usable cgroup hierarchy here ({0})")]
    Unavailable(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where builds' cgroups are made.
#[derive(Debug, Clone)]
pub enum CgroupRoot {
    /// The folder under which each build gets `<name>/`.
    V2(PathBuf),
    /// The folders (memory, pids, cpuacct) under which each build gets `<name>/`.
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpuacct: PathBuf,
    },
}

/// What a build used, read from its cgroup.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Processes the kernel killed for passing the memory limit.
    pub oom_kills: u64,
    /// Forks refused for passing the process limit.
    pub pids_refused: u64,
    pub cpu_ns: u64,
}

impl CgroupRoot {
    /// Finds (and on v2 prepares) the place for builds' cgroups under this process's own
    /// cgroup, in a folder named `tag` (shared by the daemons in that cgroup), and removes
    /// what builds of killed daemons left there.
    pub fn detect(tag: &str) -> Result<Self, CgroupError> {
        let root = Self::find(tag)?;
        root.remove_leftovers();
        Ok(root)
    }

    fn find(tag: &str) -> Result<Self, CgroupError> {
        let own = std::fs::read_to_string("/proc/self/cgroup").map_err(io(Path::new("/proc/self/cgroup")))?;
        let base = Path::new("/sys/fs/cgroup");
        if base.join("cgroup.controllers").exists() {
            let rel = own
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .ok_or_else(|| CgroupError::Unavailable("no v2 entry in /proc/self/cgroup".into()))?;
            return Self::prepare_v2(&base.join(rel.trim_start_matches('/')), tag);
        }
        let v1 = |controller: &str| -> Result<PathBuf, CgroupError> {
            let mount = base.join(controller);
            if !mount.join("cgroup.procs").exists() {
                return Err(CgroupError::Unavailable(format!(
                    "no {controller} controller mounted"
                )));
            }
            let rel = own
                .lines()
                .filter_map(|l| {
                    let mut parts = l.splitn(3, ':').skip(1);
                    parts.next().zip(parts.next())
                })
                .find(|(names, _)| names.split(',').any(|n| n == controller))
                .map(|(_, path)| path.trim_start_matches('/').to_owned())
                .unwrap_or_default();
            let dir = mount.join(rel).join(tag);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            Ok(dir)
        };
        Ok(Self::V1 {
            memory: v1("memory")?,
            pids: v1("pids")?,
            cpuacct: v1("cpuacct")?,
        })
    }

    /// v2 lets a cgroup with processes in it have no children with controllers: the daemon
    /// moves into `<own>/daemon`, then enables memory, pids and cpu for its children.
    fn prepare_v2(own: &Path, tag: &str) -> Result<Self, CgroupError> {
        let controllers = std::fs::read_to_string(own.join("cgroup.controllers")).map_err(io(own))?;
        for needed in ["memory", "pids", "cpu"] {
            if !controllers.split_whitespace().any(|c| c == needed) {
                return Err(CgroupError::Unavailable(format!(
                    "the {needed} controller is not delegated to {} (systemd: Delegate=yes)",
                    own.display()
                )));
            }
        }
        let leaf = own.join("daemon");
        std::fs::create_dir_all(&leaf).map_err(io(&leaf))?;
        let procs = std::fs::read_to_string(own.join("cgroup.procs")).map_err(io(own))?;
        for pid in procs.split_whitespace() {
            // Threads of another process in the same cgroup move too, as they must.
            let _ = std::fs::write(leaf.join("cgroup.procs"), pid);
        }
        let control = own.join("cgroup.subtree_control");
        std::fs::write(&control, "+memory +pids +cpu").map_err(io(&control))?;
        let dir = own.join(tag);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let control = dir.join("cgroup.subtree_control");
        std::fs::write(&control, "+memory +pids +cpu").map_err(io(&control))?;
        Ok(Self::V2(dir))
    }

    /// Empty build cgroups over an hour old: their daemon was killed before removing them (a
    /// cgroup with processes in it cannot be removed, and a new one is not an hour old).
    fn remove_leftovers(&self) {
        let dirs = match self {
            Self::V2(dir) => vec![dir],
            Self::V1 {
                memory,
                pids,
                cpuacct,
            } => vec![memory, pids, cpuacct],
        };
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < hour_ago);
                if old && entry.path().is_dir() {
                    let _ = std::fs::remove_dir(entry.path());
                }
            }
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Self::V2(_) => "cgroup v2",
            Self::V1 { .. } => "cgroup v1",
        }
    }

    /// A new cgroup for one build, with its limits set.
    pub fn create(&self, name: &str, memory_bytes: u64, max_procs: u64) -> Result<BuildCgroup, CgroupError> {
        let make = |dir: PathBuf| -> Result<PathBuf, CgroupError> {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            Ok(dir)
        };
        let write = |path: PathBuf, value: String| -> Result<(), CgroupError> {
            std::fs::write(&path, value).map_err(io(&path))
        };
        let group = match self {
            Self::V2(root) => {
                let dir = make(root.join(name))?;
                write(dir.join("memory.max"), memory_bytes.to_string())?;
                if dir.join("memory.swap.max").exists() {
                    write(dir.join("memory.swap.max"), "0".into())?;
                }
                write(dir.join("pids.max"), max_procs.to_string())?;
                BuildCgroup::V2(dir)
            }
            Self::V1 {
                memory,
                pids,
                cpuacct,
            } => {
                let memory = make(memory.join(name))?;
                write(memory.join("memory.limit_in_bytes"), memory_bytes.to_string())?;
                if memory.join("memory.memsw.limit_in_bytes").exists() {
                    // No swapping around the limit (where swap accounting is on).
                    let _ = std::fs::write(
                        memory.join("memory.memsw.limit_in_bytes"),
                        memory_bytes.to_string(),
                    );
                }
                let pids = make(pids.join(name))?;
                write(pids.join("pids.max"), max_procs.to_string())?;
                BuildCgroup::V1 {
                    memory,
                    pids,
                    cpuacct: make(cpuacct.join(name))?,
                }
            }
        };
        Ok(group)
    }
}

/// One build's cgroup (removed by [`BuildCgroup::remove`] once its processes are gone).
#[derive(Debug, Clone)]
pub enum BuildCgroup {
    V2(PathBuf),
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpuacct: PathBuf,
    },
}

/// `key value` lines: the value of `key`, 0 when absent.
fn field(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl BuildCgroup {
    /// The `cgroup.procs` files a process writes its pid to, to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        match self {
            Self::V2(dir) => vec![dir.join("cgroup.procs")],
            Self::V1 {
                memory,
                pids,
                cpuacct,
            } => [memory, pids, cpuacct]
                .into_iter()
                .map(|d| d.join("cgroup.procs"))
                .collect(),
        }
    }

    pub fn usage(&self) -> Usage {
        match self {
            Self::V2(dir) => Usage {
                oom_kills: field(&read(dir.join("memory.events")), "oom_kill"),
                pids_refused: field(&read(dir.join("pids.events")), "max"),
                cpu_ns: field(&read(dir.join("cpu.stat")), "usage_usec") * 1000,
            },
            Self::V1 {
                memory,
                pids,
                cpuacct,
            } => Usage {
                oom_kills: field(&read(memory.join("memory.oom_control")), "oom_kill"),
                pids_refused: field(&read(pids.join("pids.events")), "max"),
                cpu_ns: read(cpuacct.join("cpuacct.usage")).trim().parse().unwrap_or(0),
            },
        }
    }

    /// The processes in it now.
    pub fn pids(&self) -> Vec<i32> {
        let file = match self {
            Self::V2(dir) => dir.join("cgroup.procs"),
            Self::V1 { pids, .. } => pids.join("cgroup.procs"),
        };
        read(file)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// SIGKILLs every process in it, until none is left (a fork in between is caught by the
    /// next round), for at most a second.
    pub async fn kill_all(&self) {
        if let Self::V2(dir) = self {
            if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
                return;
            }
        }
        for _ in 0..100 {
            let pids = self.pids();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Removes it (after killing what is left in it).
    pub async fn remove(&self) {
        self.kill_all().await;
        let dirs = match self {
            Self::V2(dir) => vec![dir.clone()],
            Self::V1 {
                memory,
                pids,
                cpuacct,
            } => vec![memory.clone(), pids.clone(), cpuacct.clone()],
        };
        for dir in dirs {
            // A process that just died may still be counted for a moment.
            for _ in 0..50 {
                if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            if dir.exists() {
                tracing::warn!(dir = %dir.display(), "cannot remove a build's cgroup");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_event_files_are_read_by_name() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(field(text, "oom_kill"), 3);
        assert_eq!(field(text, "under_oom"), 0);
        assert_eq!(field(text, "missing"), 0);
        assert_eq!(field("max 12\n", "max"), 12);
    }
}
