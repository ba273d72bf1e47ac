//! When build processes started: the records of `kiln-bench-pnpm-shim` (src/bin/pnpm-shim.rs),
//! which the daemons started by [`crate::daemons`] find first on their PATH as `pnpm`.
//!
//! A build's first process is `pnpm install ...` run in its workspace
//! `<work dir>/<build id>-<secret>/project`; the shim records the wall clock (`CLOCK_REALTIME`) as its
//! first act, before it becomes the real pnpm. The submitter reads the same clock
//! ([`now_ns`]) just before sending its `POST`, so the difference is submit → build process
//! started, on one machine and one clock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

/// Nanoseconds since the Unix epoch (`CLOCK_REALTIME`, as the shim reads it).
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// A timestamp of Postgres (µs precision, the same clock) in ns since the epoch.
pub fn ns_of(t: chrono::DateTime<chrono::Utc>) -> i128 {
    i128::from(t.timestamp_micros()) * 1_000
}

/// One process the shim saw start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// Unix ns.
    pub at_ns: i128,
    /// Also its process group: the builder starts each step in a group of its own.
    pub pid: i32,
    pub cwd: PathBuf,
    /// pnpm's arguments, space-separated (`install --store-dir ...`, `run build`).
    pub args: String,
}

impl Start {
    /// The build whose workspace the process ran in (`<work>/<build id>-<secret>/project`).
    pub fn build(&self) -> Option<&str> {
        if self.cwd.file_name()? != "project" {
            return None;
        }
        let workspace = self.cwd.parent()?.file_name()?.to_str()?;
        Some(workspace.split_once('-').map_or(workspace, |(id, _)| id))
    }

    /// The install step: a build's first process.
    pub fn is_install(&self) -> bool {
        self.args.starts_with("install")
    }

    pub fn is_build_step(&self) -> bool {
        self.args.starts_with("run build")
    }

    fn parse(line: &str) -> Option<Self> {
        let mut parts = line.splitn(4, ' ');
        Some(Self {
            at_ns: parts.next()?.parse().ok()?,
            pid: parts.next()?.parse().ok()?,
            cwd: PathBuf::from(parts.next()?),
            args: parts.next().unwrap_or_default().to_owned(),
        })
    }
}

/// The shim, and the folders it was put in (one per daemon), each with its records.
#[derive(Debug, Clone)]
pub struct Shim {
    binary: PathBuf,
    dirs: Arc<Mutex<Vec<PathBuf>>>,
}

/// The shim's folder inside a daemon's work dir.
const FOLDER: &str = "bench-shim";

impl Shim {
    /// The shim to install: `KILN_BENCH_PNPM_SHIM` (run.sh's statically linked build of it,
    /// which starts faster), else the one built next to kiln-bench by
    /// `cargo build --release -p kiln-bench`.
    pub fn new() -> anyhow::Result<Self> {
        let binary = match std::env::var_os("KILN_BENCH_PNPM_SHIM") {
            Some(path) => PathBuf::from(path),
            None => sibling_binary("kiln-bench-pnpm-shim")?,
        };
        Ok(Self {
            binary,
            dirs: Arc::default(),
        })
    }

    /// Copies the shim as `pnpm` into `<work>/bench-shim`, and returns that folder. It is in
    /// the daemon's work dir because the builder's sandbox shows build processes that folder
    /// (with the pnpm store inside it, as by default) and little else of the host: a shim
    /// elsewhere would not exist for them. The records file is made writable by the build
    /// user, which the shim runs as.
    /// The shim's program.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    pub fn install_in(&self, work: &Path) -> anyhow::Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let dir = work.join(FOLDER);
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(work, std::fs::Permissions::from_mode(0o711))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        let pnpm = dir.join("pnpm");
        std::fs::copy(&self.binary, &pnpm)
            .with_context(|| format!("copying {} into {}", self.binary.display(), dir.display()))?;
        std::fs::set_permissions(&pnpm, std::fs::Permissions::from_mode(0o755))?;
        let log = dir.join("starts.log");
        std::fs::File::create(&log)?;
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o666))?;
        self.dirs.lock().expect("shim folders").push(dir.clone());
        Ok(dir)
    }

    /// The PATH of a daemon whose shim is in `dir`: that folder, then this process's PATH.
    pub fn path_var(dir: &Path) -> String {
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        format!("{}:{path}", dir.display())
    }

    fn logs(&self) -> Vec<PathBuf> {
        let dirs = self.dirs.lock().expect("shim folders");
        dirs.iter().map(|d| d.join("starts.log")).collect()
    }

    /// The size of the records so far (to tell cheaply whether there are new ones).
    pub fn log_len(&self) -> u64 {
        self.logs()
            .iter()
            .map(|log| std::fs::metadata(log).map_or(0, |m| m.len()))
            .sum()
    }

    /// Every start recorded so far, daemon by daemon, each in the order of its log.
    pub fn starts(&self) -> anyhow::Result<Vec<Start>> {
        let mut all = Vec::new();
        for log in self.logs() {
            let text = match std::fs::read_to_string(&log) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(e).with_context(|| format!("reading {}", log.display())),
            };
            all.extend(text.lines().filter_map(Start::parse));
        }
        Ok(all)
    }

    /// The first process of build `id` that started at or after `after_ns` and that `which`
    /// accepts.
    pub fn first(
        &self,
        id: &str,
        after_ns: i128,
        which: fn(&Start) -> bool,
    ) -> anyhow::Result<Option<Start>> {
        Ok(self
            .starts()?
            .into_iter()
            .filter(|s| s.build() == Some(id) && s.at_ns >= after_ns && which(s))
            .min_by_key(|s| s.at_ns))
    }
}

/// A binary built beside the running kiln-bench (`target/release/<name>`).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating kiln-bench")?;
    let path = exe.with_file_name(name);
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: build it with `cargo build --release -p kiln-bench -p kiln-builder` (run.sh does)",
        path.display()
    );
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_names_its_build_and_step() {
        let s = Start::parse(
            "1700000000123456789 4242 /tmp/farm-x/work-d1/01jabc-0123456789abcdef0123/project install --store-dir /s --prefer-offline",
        )
        .unwrap();
        assert_eq!(s.at_ns, 1_700_000_000_123_456_789);
        assert_eq!(s.pid, 4242);
        assert_eq!(s.build(), Some("01jabc"));
        assert!(s.is_install() && !s.is_build_step());
        let v = Start::parse("1 2 /root --version").unwrap();
        assert_eq!(v.build(), None);
        assert!(Start::parse("garbage").is_none());
    }
}
