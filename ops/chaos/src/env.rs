//! What `run.sh` hands over (the private PostgreSQL and Redis it started, the binaries, where to
//! work), and the faults injected into those services, through the same `ops/lib.sh` functions
//! that started them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

/// The chaos run's private services and folders.
#[derive(Debug, Clone)]
pub struct ChaosEnv {
    /// An admin URL of the private PostgreSQL (each scenario creates its own database).
    pub admin_database_url: String,
    pub pg_dir: PathBuf,
    pub pg_port: u16,
    pub redis_dir: PathBuf,
    pub redis_port: u16,
    /// Where `kiln-api` and `kiln-builder` are.
    pub bin_dir: PathBuf,
    /// `ops/lib.sh`.
    pub lib_sh: PathBuf,
    /// The pnpm store every daemon of every scenario shares (as a fleet's machines would).
    pub pnpm_store: PathBuf,
    /// Scratch space: one folder per scenario (artifacts, work dirs, process logs).
    pub tmp: PathBuf,
}

fn var(name: &str) -> anyhow::Result<String> {
    Ok(kiln_testkit::env::CHAOS.var(name)?)
}

fn port(name: &str) -> anyhow::Result<u16> {
    var(name)?
        .parse()
        .with_context(|| format!("{name} is not a port number"))
}

impl ChaosEnv {
    pub fn from_env() -> anyhow::Result<Self> {
        let env = Self {
            admin_database_url: var("KILN_CHAOS_DATABASE_URL")?,
            pg_dir: var("KILN_CHAOS_PG_DIR")?.into(),
            pg_port: port("KILN_CHAOS_PG_PORT")?,
            redis_dir: var("KILN_CHAOS_REDIS_DIR")?.into(),
            redis_port: port("KILN_CHAOS_REDIS_PORT")?,
            bin_dir: var("KILN_CHAOS_BIN_DIR")?.into(),
            lib_sh: var("KILN_CHAOS_LIB_SH")?.into(),
            pnpm_store: var("KILN_CHAOS_PNPM_STORE")?.into(),
            tmp: var("KILN_CHAOS_TMP")?.into(),
        };
        for bin in ["kiln-api", "kiln-builder"] {
            let path = env.bin_dir.join(bin);
            if !path.is_file() {
                bail!("{} is missing: build it first (run.sh does)", path.display());
            }
        }
        std::fs::create_dir_all(&env.tmp).with_context(|| format!("creating {}", env.tmp.display()))?;
        Ok(env)
    }

    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis_port)
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Runs one function of `ops/lib.sh` (`bash -c 'source lib.sh; FUNC ARGS...'`), so that the
    /// chaos binary stops and starts the services exactly as the scripts do.
    async fn lib_sh(&self, func: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(r#"set -euo pipefail; source "$1"; shift; "$@""#)
            .arg("kiln-chaos")
            .arg(&self.lib_sh)
            .arg(func)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .with_context(|| format!("running {func} from ops/lib.sh"))?;
        if !out.status.success() {
            bail!(
                "{func} {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// `kill -9` of redis-server (no shutdown, no final AOF rewrite: what a crash leaves).
    pub async fn kill_redis(&self) -> anyhow::Result<()> {
        let pidfile = self.redis_dir.join("redis.pid");
        let raw =
            std::fs::read_to_string(&pidfile).with_context(|| format!("reading {}", pidfile.display()))?;
        let pid: i32 = raw.trim().parse().context("redis.pid holds no pid")?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
            .context("kill -9 redis-server")?;
        wait_gone(pid, Duration::from_secs(10)).await?;
        // start_redis would take a stale pid file for a live server if the pid were reused.
        let _ = std::fs::remove_file(&pidfile);
        Ok(())
    }

    /// `start_redis DIR PORT --durable`: append-only file on, fsync every second, as run.sh
    /// started it.
    pub async fn start_redis(&self) -> anyhow::Result<()> {
        let (dir, port) = (self.redis_dir.display().to_string(), self.redis_port.to_string());
        self.lib_sh("start_redis", &[&dir, &port, "--durable"]).await
    }

    /// Starts a second redis-server, on `port`, on a copy of the (stopped) Redis's files in
    /// `copy`: what the real one will load when it starts again, readable before any client
    /// can change it. Stop it with [`ChaosEnv::stop_redis_copy`].
    pub async fn start_redis_copy(&self, copy: &Path, port: u16) -> anyhow::Result<()> {
        std::fs::create_dir_all(copy)?;
        let out = tokio::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", self.redis_dir.display()))
            .arg(copy)
            .output()
            .await?;
        if !out.status.success() {
            bail!(
                "copying Redis's files: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let _ = std::fs::remove_file(copy.join("redis.pid"));
        let (dir, port) = (copy.display().to_string(), port.to_string());
        self.lib_sh("start_redis", &[&dir, &port, "--durable"]).await
    }

    pub async fn stop_redis_copy(&self, copy: &Path) -> anyhow::Result<()> {
        self.lib_sh("stop_redis", &[&copy.display().to_string()]).await
    }

    /// `stop_postgres DIR` (a fast shutdown: open connections are cut).
    pub async fn stop_postgres(&self) -> anyhow::Result<()> {
        self.lib_sh("stop_postgres", &[&self.pg_dir.display().to_string()])
            .await
    }

    /// `start_postgres DIR PORT`, as run.sh started it.
    pub async fn start_postgres(&self) -> anyhow::Result<()> {
        let (dir, port) = (self.pg_dir.display().to_string(), self.pg_port.to_string());
        self.lib_sh("start_postgres", &[&dir, &port]).await
    }
}

/// Waits until process `pid` is gone (or a zombie).
pub async fn wait_gone(pid: i32, limit: Duration) -> anyhow::Result<()> {
    let started = tokio::time::Instant::now();
    while crate::procs::alive(pid) {
        if started.elapsed() > limit {
            bail!("process {pid} still runs {} s after SIGKILL", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A path as a `file://` URL.
pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}
