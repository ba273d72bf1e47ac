//! A Kiln farm in this process, started exactly as the API tests start theirs: the API through
//! `kiln_api::Application`, builders through `kiln_builder::run`, both on a database and a Redis
//! key prefix of their own and a filesystem artifact store in a temporary folder.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use kiln_api::Application;
use kiln_shared::config::Settings;
use kiln_testkit::signed::Signer;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

// The direct runs' helpers, where the parts have always found them.
pub use crate::direct::{direct_folder, install_and_build, install_and_build_with};

pub const HMAC_SECRET: &str = "bench-hmac-secret";
pub const TOKEN: &str = "bench-operator-token";
/// How often a build's status is polled.
pub const POLL_EVERY: Duration = Duration::from_millis(5);
/// Longest wait for one build (the builder's own limit is 300 s).
const BUILD_DEADLINE: Duration = Duration::from_secs(600);

/// A build still queued this long after its submission is looked for in the stream's
/// pending entries (delivered to a consumer but never started).
const LOST_AFTER: Duration = Duration::from_secs(3);

/// What `run.sh` hands over: the services it started and where to work.
#[derive(Debug, Clone)]
pub struct Env {
    /// An admin URL of the private PostgreSQL (each farm creates its own database).
    pub database_url: String,
    pub redis_url: String,
    /// The pnpm store shared by the farm's builds and the direct runs.
    pub pnpm_store: PathBuf,
    /// Scratch space (farms' artifacts and work dirs, direct runs' folders).
    pub tmp: PathBuf,
}

fn var(name: &str) -> anyhow::Result<String> {
    Ok(kiln_testkit::env::BENCH.var(name)?)
}

impl Env {
    pub fn from_env() -> anyhow::Result<Self> {
        let tmp = PathBuf::from(var("KILN_BENCH_TMP")?);
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(Self {
            database_url: var("KILN_BENCH_DATABASE_URL")?,
            redis_url: var("KILN_BENCH_REDIS_URL")?,
            pnpm_store: PathBuf::from(var("KILN_BENCH_PNPM_STORE")?),
            tmp,
        })
    }

    /// The farms' work folder: the one the shared store is in.
    pub fn work_dir(&self) -> PathBuf {
        self.pnpm_store
            .parent()
            .map_or_else(|| self.tmp.clone(), std::path::Path::to_path_buf)
    }

    /// The pnpm metadata cache the builder uses next to its store.
    pub fn pnpm_cache(&self) -> PathBuf {
        self.pnpm_store.with_extension("cache")
    }

    /// The store of direct runs: a store of their own, since they run as this process's user
    /// and the farm's builds as the build user (whose store this user's files would spoil).
    pub fn direct_store(&self) -> PathBuf {
        let mut name = self.pnpm_store.file_name().unwrap_or_default().to_owned();
        name.push("-direct");
        self.pnpm_store.with_file_name(name)
    }
}

fn short_id() -> String {
    ulid::Ulid::new().to_string().to_ascii_lowercase()
}

/// The API, run as `kiln-api` runs it (`#[actix_web::main]`): on an actix system of its own, in
/// a thread of its own, so that its Redis and Postgres connections and admission batches are
/// driven by that system's thread and not by the benchmark's runtime (where the load generator
/// runs).
struct ApiThread {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl ApiThread {
    /// Starts the API; returns it with its API and preview ports.
    async fn start(settings: Settings) -> anyhow::Result<(Self, u16, u16)> {
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kiln-api".into())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let app = match Application::build(settings).await {
                        Ok(app) => app,
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = started_tx.send(Ok((app.port(), app.preview_port())));
                    // Dropping the servers stops their workers and closes the listeners.
                    tokio::select! {
                        r = app.run_until_stopped() => {
                            if let Err(e) = r {
                                eprintln!("[bench] the API stopped: {e}");
                            }
                        }
                        _ = stopped => {}
                    }
                })
            })?;
        let (port, preview_port) = started
            .await
            .context("the API thread ended")?
            .context("starting the API")?;
        Ok((Self { stop, thread }, port, preview_port))
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

pub struct Farm {
    pub settings: Settings,
    /// `http://127.0.0.1:<port>`
    pub api: String,
    pub artifacts_dir: PathBuf,
    pub client: reqwest::Client,
    builds_url: String,
    server: ApiThread,
    builder: Option<JoinHandle<()>>,
    shutdown: CancellationToken,
    /// The `KILN_*` variables the farm was started with (plus the preview port it got), from
    /// which builder daemons of their own process are configured ([`Farm::daemon_vars`]).
    vars: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

/// A second API instance of a farm ([`Farm::another_api`]).
pub struct OtherApi {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    server: ApiThread,
}

impl OtherApi {
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// A deployed build as the poller saw it.
#[derive(Debug, Clone)]
pub struct Finished {
    pub id: String,
    /// Submit (before the POST) to the poll that saw `deployed`.
    pub elapsed: Duration,
    /// The POST alone.
    pub submit: Duration,
    pub view: Value,
}

impl Finished {
    /// A field of the build's `metrics`, in ms.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.view["metrics"][name].as_f64()
    }
}

impl Farm {
    /// Starts the API and `builders` builder workers (0: builds stay queued).
    pub async fn start(env: &Env, builders: usize) -> anyhow::Result<Self> {
        Self::start_with(env, builders, &[]).await
    }

    /// [`Farm::start`] with more `KILN_*` variables.
    pub async fn start_with(env: &Env, builders: usize, extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("farm-").tempdir_in(&env.tmp)?;
        // Builds run as the build user when this runs as root: it must reach the work folder.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
        let artifacts_dir = dir.path().join("artifacts");
        // Each farm's builder host starts without warm dependency trees: the shared work folder
        // outlives farms and runs, and a tree kept by an earlier one would flatter this one.
        match std::fs::remove_dir_all(env.work_dir().join(".kiln-deps")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).context("removing the warm dependency trees of an earlier farm")
            }
            _ => {}
        }
        let vars = [
            (
                "KILN_DATABASE_URL",
                kiln_shared::db::create_database(&env.database_url, "kiln_bench")
                    .await
                    .context("creating the farm's database")?,
            ),
            ("KILN_REDIS_URL", env.redis_url.clone()),
            ("KILN_REDIS_PREFIX", format!("kiln-bench-{}", short_id())),
            ("KILN_ARTIFACTS", format!("file://{}", artifacts_dir.display())),
            ("KILN_API_ADDR", "127.0.0.1:0".into()),
            ("KILN_PREVIEW_ADDR", "127.0.0.1:0".into()),
            ("KILN_METRICS_ADDR", "127.0.0.1:0".into()),
            ("KILN_HMAC_SECRET", HMAC_SECRET.into()),
            ("KILN_API_TOKENS", TOKEN.into()),
            // The work folder holding the shared store (see run.sh): sandboxed installs
            // hard-link from it, as in production.
            ("KILN_WORK_DIR", env.work_dir().display().to_string()),
            ("KILN_PNPM_STORE", env.pnpm_store.display().to_string()),
            ("KILN_BUILDER_CONCURRENCY", builders.max(1).to_string()),
            // Quotas on, as in production, but too high to refuse anything: admission pays for
            // counting every build (5,200 new projects of one user, hundreds of rebuilds of one
            // project). The load is signed by the back end or carries the operator token, which
            // the per-IP limit does not count; off all the same, so no part depends on that.
            ("KILN_QUOTA_NEW_PROJECTS_PER_HOUR", "1000000".into()),
            ("KILN_QUOTA_REBUILDS_PER_HOUR", "1000000".into()),
            ("KILN_RATE_LIMIT_PER_IP", "off".into()),
            ("KILN_MAX_STREAMS_PER_CLIENT", "off".into()),
        ];
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .chain(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
            .collect();
        let mut settings = Settings::from_vars(vars.clone()).context("bench settings")?;
        let (server, port, preview_port) = ApiThread::start(settings.clone()).await?;
        let api = format!("http://127.0.0.1:{port}");
        settings.preview.public_port = Some(preview_port);
        vars.push(("KILN_PREVIEW_PUBLIC_PORT".into(), preview_port.to_string()));

        let shutdown = CancellationToken::new();
        let builder = if builders > 0 {
            // Connect first, so that a builder that cannot start fails here and not in a poll.
            kiln_builder::Builder::connect(settings.clone())
                .await
                .context("connecting a builder")?;
            let (s, token) = (settings.clone(), shutdown.clone());
            Some(tokio::spawn(async move {
                if let Err(e) = kiln_builder::run(s, token).await {
                    eprintln!("[bench] the builder stopped: {e:#}");
                }
            }))
        } else {
            None
        };
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .pool_idle_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            builds_url: format!("{api}/v1/builds"),
            api,
            settings,
            artifacts_dir,
            client,
            server,
            builder,
            shutdown,
            vars,
            _dir: dir,
        })
    }

    /// The farm's temporary folder (artifacts, work dirs).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// The `KILN_*` variables of a builder daemon of this farm run as a process of its own
    /// (the API's listeners and secrets left out), with `extra` ones added or replacing.
    pub fn daemon_vars(&self, extra: &[(&str, String)]) -> Vec<(String, String)> {
        const API_ONLY: &[&str] = &[
            "KILN_API_ADDR",
            "KILN_PREVIEW_ADDR",
            "KILN_HMAC_SECRET",
            "KILN_API_TOKENS",
        ];
        let mut vars: Vec<(String, String)> = self
            .vars
            .iter()
            .filter(|(k, _)| !API_ONLY.contains(&k.as_str()))
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .cloned()
            .collect();
        vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        vars
    }

    /// Stops the builder (after its build in progress, if any) and the API. Returns the farm's
    /// temporary folder (artifacts, work dir), removed when dropped.
    pub async fn stop(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        if let Some(b) = self.builder {
            let _ = tokio::time::timeout(Duration::from_secs(60), b).await;
        }
        self.server.stop().await;
        self._dir
    }

    /// One more API instance of this farm (the same database, Redis prefix and store), on an
    /// actix system of its own.
    pub async fn another_api(&self) -> anyhow::Result<OtherApi> {
        let (server, port, _) = ApiThread::start(self.settings.clone()).await?;
        Ok(OtherApi {
            url: format!("http://127.0.0.1:{port}"),
            server,
        })
    }

    /// `POST /v1/builds`, signed as the product back end (as the API tests' `signed()` does).
    pub fn post_build(&self, client: &reqwest::Client, body: Bytes) -> reqwest::RequestBuilder {
        Signer::new(HMAC_SECRET).request(client, "POST", &self.api, "/v1/builds", body)
    }

    /// A `POST` to any API path, signed as the product back end.
    pub fn signed_post(&self, path: &str, body: Bytes) -> reqwest::RequestBuilder {
        Signer::new(HMAC_SECRET).request(&self.client, "POST", &self.api, path, body)
    }

    pub async fn get_build(&self, id: &str) -> anyhow::Result<Value> {
        let res = self
            .client
            .get(format!("{}/{id}", self.builds_url))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        let status = res.status();
        let body: Value = res.json().await?;
        if status != 200 {
            bail!("GET /v1/builds/{id}: {status} {body}");
        }
        Ok(body)
    }

    /// Submits a build and polls it every 5 ms until it is deployed; a failed build is an error
    /// carrying its message and log.
    pub async fn build(&self, body: &Value) -> anyhow::Result<Finished> {
        let body = Bytes::from(serde_json::to_vec(body)?);
        let started = Instant::now();
        let id = self.submit(body).await?;
        let submit = started.elapsed();
        self.wait_deployed(id, started, submit).await
    }

    /// `POST /v1/builds` of a serialised body; the new build's id (anything but a 202 is an
    /// error).
    pub async fn submit(&self, body: Bytes) -> anyhow::Result<String> {
        let res = self.post_build(&self.client, body).send().await?;
        let status = res.status();
        let answer: Value = res.json().await?;
        if status != 202 {
            bail!("POST /v1/builds answered {status}: {answer}");
        }
        Ok(answer["buildId"]
            .as_str()
            .context("a 202 has a buildId")?
            .to_owned())
    }

    /// Polls build `id`, submitted at `started` (its `POST` took `submit`), every 5 ms until it
    /// is deployed; a failed build is an error carrying its message and log.
    pub async fn wait_deployed(
        &self,
        id: String,
        started: Instant,
        submit: Duration,
    ) -> anyhow::Result<Finished> {
        let done = self.wait_done(id, started, submit).await?;
        if done.view["status"] == "failed" {
            let id = &done.id;
            let log = self.log(id).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "build {id} failed at {}: {}\n--- log tail ---\n{}",
                done.view["failedStep"],
                done.view["error"],
                tail.join("\n")
            );
        }
        Ok(done)
    }

    /// Polls build `id` like [`Farm::wait_deployed`] until it is deployed or failed, and returns
    /// it either way (`elapsed`: submit to the poll that saw it finished).
    pub async fn wait_done(
        &self,
        id: String,
        started: Instant,
        submit: Duration,
    ) -> anyhow::Result<Finished> {
        let mut next_lost_check = LOST_AFTER;
        loop {
            let view = self.get_build(&id).await?;
            if matches!(view["status"].as_str(), Some("deployed" | "failed")) {
                return Ok(Finished {
                    id,
                    elapsed: started.elapsed(),
                    submit,
                    view,
                });
            }
            if view["status"] == "queued" && started.elapsed() > next_lost_check {
                next_lost_check += Duration::from_secs(1);
                if let Some((consumer, idle_ms)) = self.delivered_but_queued(&id).await? {
                    bail!(
                        "build {id} is lost: Redis delivered it to consumer {consumer} {idle_ms} ms ago, but \
                         the builder never started it (it is still queued and sits in the consumer \
                         group's pending entries, which nothing re-reads). See ops/bench/README.md, \
                         'Lost builds'."
                    );
                }
            }
            if started.elapsed() > BUILD_DEADLINE {
                bail!(
                    "build {id} did not finish in {} s: {view}",
                    BUILD_DEADLINE.as_secs()
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// When build `id`'s stream entry was delivered to a consumer more than 2 s ago and is still
    /// unacknowledged: that consumer and the entry's idle time.
    async fn delivered_but_queued(&self, id: &str) -> anyhow::Result<Option<(String, u64)>> {
        use redis::AsyncCommands;
        use secrecy::ExposeSecret;
        let client = redis::Client::open(self.settings.redis.url.expose_secret())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let keys = kiln_shared::redis::Keys::new(self.settings.redis.prefix.clone());
        let stream = keys.stream();
        let pending: redis::streams::StreamPendingCountReply = match conn
            .xpending_count(&stream, kiln_shared::redis::CONSUMER_GROUP, "-", "+", 100)
            .await
        {
            Ok(p) => p,
            // No consumer group yet: no builder has connected, so nothing was delivered.
            Err(e) if e.code() == Some("NOGROUP") => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        for entry in pending.ids {
            if entry.last_delivered_ms < 2_000 {
                continue;
            }
            let range: redis::streams::StreamRangeReply = conn.xrange(&stream, &entry.id, &entry.id).await?;
            let build = range.ids.first().and_then(|e| e.get::<String>("build_id"));
            if build.as_deref() == Some(id) {
                return Ok(Some((entry.consumer, entry.last_delivered_ms as u64)));
            }
        }
        Ok(None)
    }

    /// `ANALYZE versions` on the farm's database, so that the planner has statistics (as any
    /// long-running farm's table has) instead of choosing plans for an empty table.
    pub async fn analyze(&self) -> anyhow::Result<()> {
        use secrecy::ExposeSecret;
        let pool = sqlx::PgPool::connect(self.settings.database.url.expose_secret()).await?;
        sqlx::query("analyze versions").execute(&pool).await?;
        pool.close().await;
        Ok(())
    }

    /// Entries in the build stream (waiting plus being built).
    pub async fn queue_depth(&self) -> anyhow::Result<u64> {
        let pool = kiln_shared::redis::connect(&self.settings.redis.url, Duration::from_secs(2))?;
        let keys = kiln_shared::redis::Keys::new(self.settings.redis.prefix.clone());
        Ok(kiln_shared::redis::Queue::new(pool, keys).depth().await?)
    }

    /// A build's log from the filesystem store.
    pub fn log(&self, id: &str) -> Option<String> {
        std::fs::read_to_string(self.artifacts_dir.join("logs").join(format!("{id}.log"))).ok()
    }

    /// A source file of a version of `user`'s `project`, read through the API (the source
    /// manifest lives in the version's row; a small file inline in it, a larger one in a blob).
    pub async fn source_file(
        &self,
        user: &str,
        project: &str,
        id: &str,
        path: &str,
    ) -> anyhow::Result<Vec<u8>> {
        let url = format!(
            "{}/v1/projects/{user}/{project}/versions/{id}/files/{path}",
            self.api
        );
        let res = self.client.get(&url).bearer_auth(TOKEN).send().await?;
        let status = res.status();
        let body = res.bytes().await?;
        if status != 200 {
            bail!("GET {url}: {status} {}", String::from_utf8_lossy(&body));
        }
        Ok(body.to_vec())
    }
}
