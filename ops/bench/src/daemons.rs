//! `kiln-builder` daemons as processes of their own, as on a fleet: the release binary built
//! beside kiln-bench, configured by `KILN_*` variables (the farm's database, Redis prefix,
//! and artifact store; a work dir of its own holding its pnpm store), with the pnpm shim of
//! [`crate::starts`] first on its PATH.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::farm::{Farm, TOKEN};
use crate::starts::{self, Shim};

/// How long a stopped daemon gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Starts daemons of one farm.
pub struct Launcher {
    bin: PathBuf,
    vars: Vec<(String, String)>,
    shim: Shim,
    dir: PathBuf,
}

impl Launcher {
    /// Daemons of `farm` with `extra` variables (e.g. `KILN_LEASE_SECS`), running builds with
    /// `shim` first on their PATH.
    pub fn new(farm: &Farm, shim: &Shim, extra: &[(&str, String)]) -> anyhow::Result<Self> {
        let mut vars = vec![
            ("KILN_BUILDER_CONCURRENCY", "1".to_owned()),
            // A stopped daemon's builds have long finished; it need not wait 300 s.
            ("KILN_DRAIN_SECS", "5".to_owned()),
        ];
        vars.extend(extra.iter().cloned());
        Ok(Self {
            bin: starts::sibling_binary("kiln-builder")?,
            vars: farm.daemon_vars(&vars),
            shim: shim.clone(),
            dir: farm.dir().to_path_buf(),
        })
    }

    /// Starts daemon `id` (its consumer name), with the work dir `<farm>/work-<id>` holding
    /// its pnpm store (as a builder host's work dir does by default; the no-op builds need no
    /// package) and the shim, and its output in `<farm>/daemon-<id>.log`.
    pub fn spawn(&self, id: &str) -> anyhow::Result<Daemon> {
        let log_path = self.dir.join(format!("daemon-{id}.log"));
        let log = std::fs::File::create(&log_path)?;
        let work = self.dir.join(format!("work-{id}"));
        let shim = self.shim.install_in(&work)?;
        let child = tokio::process::Command::new(&self.bin)
            .env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .env("KILN_BUILDER_ID", id)
            .env("KILN_WORK_DIR", &work)
            .env("KILN_PNPM_STORE", work.join("pnpm-store"))
            .env("PATH", Shim::path_var(&shim))
            .env("HOME", std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
            .env("RUST_LOG", "warn")
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // A benchmark that stops half-way leaves no daemon behind.
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        Ok(Daemon {
            id: id.to_owned(),
            pid: child.id().context("a started daemon has a pid")?,
            work,
            log: log_path,
            child,
        })
    }
}

/// One running `kiln-builder` process.
pub struct Daemon {
    pub id: String,
    pub pid: u32,
    /// Its work dir: a build's workspace is `<work>/<build id>`.
    pub work: PathBuf,
    log: PathBuf,
    child: tokio::process::Child,
}

impl Daemon {
    /// `kill -9`: gone at once, nothing handed back, its claims left to lapse.
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// SIGTERM (a drain), then SIGKILL if it has not exited within [`STOP_GRACE`].
    pub async fn stop(mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        if tokio::time::timeout(STOP_GRACE, self.child.wait()).await.is_err() {
            eprintln!(
                "[bench] daemon {} did not stop within {} s of SIGTERM: killed",
                self.id,
                STOP_GRACE.as_secs()
            );
            let _ = self.child.kill().await;
        }
    }

    /// The last lines of its output (for error messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().rev().take(20).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// CPU seconds (user + system) of the daemon itself and of its reaped children (the
    /// builds' processes), from /proc/<pid>/stat.
    pub fn cpu_secs(&self) -> Option<(f64, f64)> {
        crate::cpu::process_secs(self.pid)
    }
}

/// Starts daemons `ids` and waits until the fleet view shows every one of them alive.
pub async fn start_all(farm: &Farm, launcher: &Launcher, ids: &[String]) -> anyhow::Result<Vec<Daemon>> {
    let mut daemons = Vec::with_capacity(ids.len());
    for id in ids {
        daemons.push(launcher.spawn(id)?);
    }
    let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
    if let Err(e) = wait_live(farm, &wanted).await {
        let tails: Vec<String> = daemons
            .iter()
            .map(|d| format!("--- daemon {} ---\n{}", d.id, d.log_tail()))
            .collect();
        bail!("{e:#}\n{}", tails.join("\n"));
    }
    Ok(daemons)
}

/// Waits until `GET /v1/builders` lists every builder of `ids` (each heartbeats once its
/// workers are started), then a little more, so that their first blocking reads are waiting.
pub async fn wait_live(farm: &Farm, ids: &[&str]) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let res = farm
            .client
            .get(format!("{}/v1/builders", farm.api))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        let fleet: Value = res.json().await?;
        let live: Vec<&str> = fleet["builders"]
            .as_array()
            .map(|b| b.iter().filter_map(|b| b["id"].as_str()).collect())
            .unwrap_or_default();
        if ids.iter().all(|id| live.contains(id)) {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("builders {ids:?} were not all alive after 30 s (live: {live:?})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops every daemon (SIGTERM, in parallel).
pub async fn stop_all(daemons: Vec<Daemon>) {
    let stops: Vec<_> = daemons.into_iter().map(|d| tokio::spawn(d.stop())).collect();
    for s in stops {
        let _ = s.await;
    }
}
