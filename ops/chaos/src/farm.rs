//! One scenario's Kiln farm, as real processes: `kiln-api` and `kiln-builder` daemons started
//! from the built binaries with `KILN_*` variables only, on a database, a Redis key prefix and
//! a filesystem artifact store of the scenario's own. Daemons can be killed (`kill -9`) and
//! started again under the same name; a daemon can reach Redis through a [`crate::proxy::Proxy`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::env::{file_url, ChaosEnv};
use crate::procs::{self, Proc};

pub const TOKEN: &str = "chaos-operator-token";
const HMAC_SECRET: &str = "chaos-hmac-secret";
/// How long a started process may take to answer (a debug build applies migrations first).
const START_LIMIT: Duration = Duration::from_secs(90);

/// The settings a scenario changes.
#[derive(Debug, Clone)]
pub struct FarmOptions {
    /// `KILN_LEASE_SECS` (renewed every third of it).
    pub lease_secs: u64,
    /// `KILN_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `KILN_CANCEL_GRACE_SECS`.
    pub cancel_grace_secs: u64,
}

impl Default for FarmOptions {
    fn default() -> Self {
        Self {
            lease_secs: 4,
            max_attempts: 10,
            cancel_grace_secs: 2,
        }
    }
}

struct Daemon {
    redis_url: String,
    child: Option<Child>,
}

pub struct Farm {
    pub dir: PathBuf,
    pub artifacts: PathBuf,
    pub db: sqlx::PgPool,
    pub redis_prefix: String,
    pub options: FarmOptions,
    /// `http://127.0.0.1:<port>`
    pub api: String,
    http: reqwest::Client,
    env: ChaosEnv,
    vars: Vec<(String, String)>,
    api_child: Mutex<Option<Child>>,
    daemons: Mutex<BTreeMap<String, Daemon>>,
    /// Processes that ended without being told to (a violation whatever the scenario).
    exits: Mutex<Vec<String>>,
}

/// A free loopback port (free when asked: bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl Farm {
    /// Creates the scenario's database, folders and Redis prefix, and starts `kiln-api`.
    pub async fn start(env: &ChaosEnv, name: &str, options: FarmOptions) -> anyhow::Result<Self> {
        let dir = env.tmp.join(name);
        let artifacts = dir.join("artifacts");
        std::fs::create_dir_all(dir.join("logs"))?;
        let database_url =
            kiln_shared::db::create_database(&env.admin_database_url, &format!("kiln_chaos_{name}"))
                .await
                .context("creating the scenario's database")?;
        let redis_prefix = format!(
            "kiln-chaos-{name}-{}",
            ulid::Ulid::new().to_string().to_ascii_lowercase()
        );
        let vars: Vec<(String, String)> = [
            ("KILN_DATABASE_URL", database_url.clone()),
            ("KILN_REDIS_URL", env.redis_url()),
            ("KILN_REDIS_PREFIX", redis_prefix.clone()),
            ("KILN_ARTIFACTS", file_url(&artifacts)),
            ("KILN_HMAC_SECRET", HMAC_SECRET.into()),
            ("KILN_API_TOKENS", TOKEN.into()),
            ("KILN_PNPM_STORE", env.pnpm_store.display().to_string()),
            ("KILN_LEASE_SECS", options.lease_secs.to_string()),
            ("KILN_MAX_ATTEMPTS", options.max_attempts.to_string()),
            ("KILN_CANCEL_GRACE_SECS", options.cancel_grace_secs.to_string()),
            ("KILN_DRAIN_SECS", "5".into()),
            ("KILN_RECONCILE_SECS", "5".into()),
            ("KILN_BUILD_TIMEOUT_SECS", "180".into()),
            // Nothing subscribes: the workers would only poll Postgres.
            ("KILN_WEBHOOK_DELIVERY", "off".into()),
            // 200 builds over 40 projects of a few users: the default quotas (5 new projects a
            // user, 20 rebuilds a project an hour) would refuse most of them. The suite checks
            // the farm, not the quotas (api/tests/api/limits.rs does).
            ("KILN_QUOTA_NEW_PROJECTS_PER_HOUR", "1000000".into()),
            ("KILN_QUOTA_REBUILDS_PER_HOUR", "1000000".into()),
            ("RUST_LOG", "info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(&database_url)?;
        let api_port = free_port()?;
        let farm = Self {
            dir,
            artifacts,
            db,
            redis_prefix,
            options,
            api: format!("http://127.0.0.1:{api_port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .pool_idle_timeout(Duration::from_secs(2))
                .build()?,
            env: env.clone(),
            vars,
            api_child: Mutex::new(None),
            daemons: Mutex::new(BTreeMap::new()),
            exits: Mutex::new(Vec::new()),
        };
        let preview_port = free_port()?;
        let api_vars = [
            ("KILN_API_ADDR".to_owned(), format!("127.0.0.1:{api_port}")),
            (
                "KILN_PREVIEW_ADDR".to_owned(),
                format!("127.0.0.1:{preview_port}"),
            ),
        ];
        let child = farm.spawn("kiln-api", "api", &api_vars)?;
        *farm.api_child.lock().expect("api lock") = Some(child);
        farm.wait_healthy().await?;
        Ok(farm)
    }

    fn spawn(&self, bin: &str, log_name: &str, extra: &[(String, String)]) -> anyhow::Result<Child> {
        let log_path = self.dir.join("logs").join(format!("{log_name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let inherited = ["PATH", "HOME", "LANG"]
            .into_iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)));
        Command::new(self.env.bin(bin))
            .env_clear()
            .envs(inherited)
            .envs(self.vars.iter().cloned())
            .envs(extra.iter().cloned())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {bin}"))
    }

    async fn wait_healthy(&self) -> anyhow::Result<()> {
        let started = tokio::time::Instant::now();
        loop {
            if let Ok(res) = self.http.get(format!("{}/healthz", self.api)).send().await {
                if res.status() == 200 {
                    return Ok(());
                }
            }
            if let Some(status) = self
                .api_child
                .lock()
                .expect("api lock")
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "kiln-api exited at start ({status}); see {}",
                    self.log_path("api").display()
                );
            }
            if started.elapsed() > START_LIMIT {
                bail!(
                    "kiln-api did not answer /healthz within {} s",
                    START_LIMIT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// The work dir of daemon `name` (each daemon has its own, as each machine of a fleet).
    pub fn work_dir(&self, name: &str) -> PathBuf {
        self.dir.join("daemons").join(name).join("work")
    }

    /// The daemon whose workspace `home` (a build's `HOME`) is in.
    pub fn daemon_of_home(&self, home: &str) -> Option<String> {
        let rest = Path::new(home.trim())
            .strip_prefix(self.dir.join("daemons"))
            .ok()?;
        rest.components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
    }

    /// Starts daemon `name`, reaching Redis directly or at `redis_url`.
    pub fn start_daemon(&self, name: &str, redis_url: Option<String>) -> anyhow::Result<()> {
        let redis_url = redis_url.unwrap_or_else(|| self.env.redis_url());
        let mut daemons = self.daemons.lock().expect("daemons lock");
        let daemon = daemons.entry(name.to_owned()).or_insert(Daemon {
            redis_url,
            child: None,
        });
        if daemon.child.is_some() {
            bail!("daemon {name} already runs");
        }
        let work = self.work_dir(name);
        std::fs::create_dir_all(&work)?;
        let extra = [
            ("KILN_BUILDER_ID".to_owned(), name.to_owned()),
            // Daemons that serve metrics must not all want the same port on one machine.
            ("KILN_METRICS_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
            ("KILN_WORK_DIR".to_owned(), work.display().to_string()),
            ("KILN_REDIS_URL".to_owned(), daemon.redis_url.clone()),
        ];
        daemon.child = Some(self.spawn("kiln-builder", name, &extra)?);
        Ok(())
    }

    /// Starts a daemon that was killed or stopped, with its name, Redis route and work dir.
    pub fn restart_daemon(&self, name: &str) -> anyhow::Result<()> {
        self.start_daemon(name, None)
    }

    /// `kill -9` of daemon `name`; returns the processes of its builds that outlived it.
    pub async fn kill_daemon(&self, name: &str) -> anyhow::Result<Vec<Proc>> {
        let child = self
            .daemons
            .lock()
            .expect("daemons lock")
            .get_mut(name)
            .and_then(|d| d.child.take());
        let Some(mut child) = child else {
            bail!("daemon {name} is not running");
        };
        child.start_kill().context("kill -9")?;
        let _ = child.wait().await;
        Ok(procs::under(&self.work_dir(name)))
    }

    /// SIGTERM to daemon `name` (a drain), then its exit.
    pub async fn stop_daemon(&self, name: &str) -> anyhow::Result<()> {
        let child = self
            .daemons
            .lock()
            .expect("daemons lock")
            .get_mut(name)
            .and_then(|d| d.child.take());
        if let Some(child) = child {
            terminate(child, Duration::from_secs(15)).await;
        }
        Ok(())
    }

    pub fn daemon_names(&self) -> Vec<String> {
        self.daemons
            .lock()
            .expect("daemons lock")
            .keys()
            .cloned()
            .collect()
    }

    /// The daemons running now.
    pub fn running_daemons(&self) -> Vec<String> {
        self.daemons
            .lock()
            .expect("daemons lock")
            .iter()
            .filter(|(_, d)| d.child.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Notes every process of the farm that ended by itself since the last look.
    pub fn note_exits(&self) {
        let mut exits = Vec::new();
        for (name, d) in self.daemons.lock().expect("daemons lock").iter_mut() {
            if let Some(status) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                exits.push(format!(
                    "daemon {name} exited by itself ({status}); see {}",
                    self.log_path(name).display()
                ));
                d.child = None;
            }
        }
        let mut api = self.api_child.lock().expect("api lock");
        if let Some(status) = api.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            exits.push(format!(
                "kiln-api exited by itself ({status}); see {}",
                self.log_path("api").display()
            ));
            *api = None;
        }
        self.exits.lock().expect("exits lock").extend(exits);
    }

    /// Processes that ended by themselves.
    pub fn exits(&self) -> Vec<String> {
        self.note_exits();
        self.exits.lock().expect("exits lock").clone()
    }

    /// Stops the daemons (SIGTERM: a drain) and the API.
    pub async fn stop(&self) {
        self.note_exits();
        let children: Vec<Child> = self
            .daemons
            .lock()
            .expect("daemons lock")
            .values_mut()
            .filter_map(|d| d.child.take())
            .collect();
        for child in children {
            terminate(child, Duration::from_secs(15)).await;
        }
        let api = self.api_child.lock().expect("api lock").take();
        if let Some(api) = api {
            terminate(api, Duration::from_secs(15)).await;
        }
        self.db.close().await;
    }

    // --- The API -------------------------------------------------------------------------

    async fn answer(res: reqwest::Response) -> anyhow::Result<(u16, Value)> {
        Ok(kiln_testkit::answer::json(res).await?)
    }

    /// `POST /v1/builds` with an `Idempotency-Key` (a retried request is never a second build).
    pub async fn submit(&self, body: &Value, idempotency_key: &str) -> anyhow::Result<(u16, Value)> {
        let res = self
            .http
            .post(format!("{}/v1/builds", self.api))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .send()
            .await?;
        Self::answer(res).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let res = self
            .http
            .get(format!("{}{path}", self.api))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        Self::answer(res).await
    }

    pub async fn post(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let res = self
            .http
            .post(format!("{}{path}", self.api))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({}))
            .send()
            .await?;
        Self::answer(res).await
    }

    /// `GET /v1/builds/{id}`, expecting 200.
    pub async fn build(&self, id: &str) -> anyhow::Result<Value> {
        let (status, body) = self.get(&format!("/v1/builds/{id}")).await?;
        if status != 200 {
            bail!("GET /v1/builds/{id}: {status} {body}");
        }
        Ok(body)
    }

    /// A Redis connection (direct, whatever route the daemons take).
    pub async fn redis(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.env.redis_url())?;
        Ok(client.get_multiplexed_async_connection().await?)
    }

    pub fn keys(&self) -> kiln_shared::redis::Keys {
        kiln_shared::redis::Keys::new(self.redis_prefix.clone())
    }
}

/// SIGTERM, then SIGKILL after `limit`.
async fn terminate(mut child: Child, limit: Duration) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(limit, child.wait()).await.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}
