//! The test app: a farm in this process (the API on port 0, builders through
//! `kiln_builder::run`) on a database, a Redis prefix and a store of its own, and the requests
//! tests make of it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_api::Application;
use kiln_shared::config::Settings;
use kiln_shared::domain::read_tree;
use kiln_testkit::env::test as test_env;
use kiln_testkit::poll::{self, Look};
use kiln_testkit::signed::Signer;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub const HMAC_SECRET: &str = "test-hmac-secret";
pub const TOKEN: &str = "test-operator-token";

/// Which artifact store a test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Fs,
    S3,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Builder daemons started in-process (0: builds stay queued).
    pub builders: usize,
    pub store: Store,
    pub generator: Option<String>,
    pub timeout_secs: u64,
    pub max_output_mb: u64,
    /// More `KILN_*` variables.
    pub env: Vec<(&'static str, String)>,
    /// The pnpm store shared by the whole run (`KILN_TEST_PNPM_STORE`), for tests that install
    /// real packages: what one downloaded, the next reuses. Else the store is inside the
    /// test's work folder, as a builder host's is by default (installs start in warm
    /// sandboxes only then).
    pub shared_store: bool,
}

impl Options {
    /// No builder: builds stay queued.
    pub fn without_builders() -> Self {
        Self {
            builders: 0,
            ..Self::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            builders: 1,
            store: Store::Fs,
            generator: None,
            timeout_secs: 300,
            max_output_mb: 100,
            env: Vec::new(),
            shared_store: false,
        }
    }
}

/// One Server-Sent Events message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseMessage {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
    /// When the chunk that completed it arrived.
    pub at: Instant,
}

/// A builder daemon started by [`TestApp::start_builder`].
pub struct BuilderHandle {
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub struct TestApp {
    pub api: String,
    pub preview_port: u16,
    pub client: reqwest::Client,
    pub db: sqlx::PgPool,
    pub settings: Settings,
    pub artifacts_dir: Option<PathBuf>,
    pub shutdown: CancellationToken,
    /// Stops the first API instance (and its webhook deliveries).
    pub api_stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app(opts: Options) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    // The build user (the builders here run as root) must reach the work folder inside.
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    let database_url = kiln_shared::db::create_database(&test_env::database_url(), "kiln_test")
        .await
        .expect("creating the test's database");
    let prefix = format!("kiln-test-{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    let s3 = (opts.store == Store::S3).then(test_env::s3);
    let (artifacts, artifacts_dir) = match &s3 {
        None => {
            let d = dir.path().join("artifacts");
            (format!("file://{}", d.display()), Some(d))
        }
        Some(s3) => (format!("s3://{}/{prefix}", s3.bucket), None),
    };
    let mut vars = vec![
        ("KILN_DATABASE_URL", database_url),
        ("KILN_REDIS_URL", test_env::redis_url()),
        ("KILN_REDIS_PREFIX", prefix),
        ("KILN_ARTIFACTS", artifacts),
        ("KILN_API_ADDR", "127.0.0.1:0".into()),
        ("KILN_PREVIEW_ADDR", "127.0.0.1:0".into()),
        ("KILN_METRICS_ADDR", "127.0.0.1:0".into()),
        ("KILN_HMAC_SECRET", HMAC_SECRET.into()),
        ("KILN_API_TOKENS", format!("other-token, {TOKEN}")),
        ("KILN_WORK_DIR", dir.path().join("work").display().to_string()),
        (
            "KILN_PNPM_STORE",
            match test_env::pnpm_store() {
                Some(shared) if opts.shared_store => shared,
                _ => dir.path().join("work/pnpm-store").display().to_string(),
            },
        ),
        ("KILN_BUILD_TIMEOUT_SECS", opts.timeout_secs.to_string()),
        ("KILN_MAX_OUTPUT_MB", opts.max_output_mb.to_string()),
        ("KILN_BUILDER_CONCURRENCY", opts.builders.max(1).to_string()),
        // Tests submit many projects of one user and hammer one client address; the limits'
        // own tests (limits.rs) turn these on through `env`.
        ("KILN_QUOTA_NEW_PROJECTS_PER_HOUR", "off".into()),
        ("KILN_QUOTA_REBUILDS_PER_HOUR", "off".into()),
        ("KILN_RATE_LIMIT_PER_IP", "off".into()),
        ("KILN_MAX_STREAMS_PER_CLIENT", "off".into()),
    ];
    if let Some(s3) = s3 {
        vars.push(("KILN_S3_ENDPOINT", s3.endpoint));
        vars.push(("KILN_S3_REGION", s3.region));
        vars.push(("AWS_ACCESS_KEY_ID", s3.access_key));
        vars.push(("AWS_SECRET_ACCESS_KEY", s3.secret_key));
    }
    if let Some(g) = &opts.generator {
        vars.push(("KILN_GENERATOR_CMD", g.clone()));
    }
    vars.extend(opts.env.iter().cloned());
    let mut settings = Settings::from_vars(vars.into_iter().map(|(k, v)| (k.to_owned(), v)))
        .expect("test settings are valid");
    let app = Application::build(settings.clone())
        .await
        .expect("the API starts");
    let api = format!("http://127.0.0.1:{}", app.port());
    let preview_port = app.preview_port();
    let api_stop = app.stopper();
    tokio::spawn(app.run_until_stopped());
    settings.preview.public_port = Some(preview_port);

    let shutdown = CancellationToken::new();
    if opts.builders > 0 {
        let s = settings.clone();
        let token = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = kiln_builder::run(s, token).await {
                panic!("the builder failed: {e:#}");
            }
        });
    }
    let db = kiln_shared::db::connect(&settings.database.url, 5).unwrap();
    TestApp {
        api,
        preview_port,
        // Idle connections are dropped well before the server's 5 s keep-alive closes them, so
        // a request never races the server's close on a reused connection.
        client: reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
        db,
        settings,
        artifacts_dir,
        shutdown,
        api_stop,
        _dir: dir,
    }
}

/// A project folder as the `files` of a request.
pub fn tree(dir: &str) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    serde_json::to_value(read_tree(&root).expect("reading an example")).unwrap()
}

pub fn unique(name: &str) -> String {
    format!(
        "{name}-{}",
        &ulid::Ulid::new().to_string().to_ascii_lowercase()[20..]
    )
}

impl TestApp {
    /// Starts a second API instance on the same database, Redis prefix and store (no builder);
    /// returns its base URL. It runs until the test ends.
    pub async fn another_api(&self) -> String {
        let app = Application::build(self.settings.clone())
            .await
            .expect("the second API starts");
        let url = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        url
    }

    /// Reads `GET {base}/v1/builds/{id}/events/stream` until the server ends it; returns the
    /// events as `(id, type, data)`.
    pub async fn sse(&self, base: &str, id: &str, last_event_id: Option<i64>) -> Vec<(i64, String, Value)> {
        self.sse_messages(&format!("{base}/v1/builds/{id}/events/stream"), last_event_id)
            .await
            .into_iter()
            .map(|m| {
                let data: Value = serde_json::from_str(&m.data).unwrap();
                let id: i64 = m.id.as_deref().expect("an event has an id").parse().unwrap();
                assert_eq!(data["id"], id, "{m:?}");
                assert_eq!(data["type"], m.event.as_str(), "{m:?}");
                (id, m.event, data)
            })
            .collect()
    }

    /// Reads an SSE stream until the server ends it; returns its messages (comments left out).
    pub async fn sse_messages(&self, url: &str, last_event_id: Option<i64>) -> Vec<SseMessage> {
        let mut req = self.client.get(url).bearer_auth(TOKEN);
        if let Some(last) = last_event_id {
            req = req.header("Last-Event-ID", last.to_string());
        }
        let mut res = req.send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let mut buf = String::new();
        let mut messages = Vec::new();
        let read = async {
            while let Some(chunk) = res.chunk().await.unwrap() {
                buf.push_str(std::str::from_utf8(&chunk).unwrap());
                while let Some(end) = buf.find("\n\n") {
                    let m: String = buf.drain(..end + 2).collect();
                    if !m.trim().is_empty() && !m.starts_with(':') {
                        messages.push((m, Instant::now()));
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(120), read)
            .await
            .expect("the stream ends");
        messages
            .into_iter()
            .map(|(m, at)| {
                let field = |name: &str| m.lines().find_map(|l| l.strip_prefix(name)).map(str::to_owned);
                SseMessage {
                    id: field("id: "),
                    event: field("event: ").unwrap_or_else(|| panic!("no event in {m:?}")),
                    data: field("data: ").unwrap_or_default(),
                    at,
                }
            })
            .collect()
    }

    /// A request signed as the product back end (with a nonce of its own, as a back end that
    /// may send the same request twice in a second does).
    pub async fn signed(&self, method: &str, path: &str, body: &[u8]) -> reqwest::Response {
        self.signed_request(&self.api, method, path, body)
            .send()
            .await
            .unwrap()
    }

    /// A request to the API at `base` (this one or another instance), signed as the product back
    /// end; not sent yet.
    pub fn signed_request(
        &self,
        base: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> reqwest::RequestBuilder {
        Signer::new(HMAC_SECRET).request(&self.client, method, base, path, body.to_vec())
    }

    pub async fn post_build(&self, body: &Value) -> reqwest::Response {
        self.signed("POST", "/v1/builds", body.to_string().as_bytes())
            .await
    }

    /// A GET with the operator token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.api))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// A GET without credentials.
    pub async fn public_json(&self, path: &str) -> Value {
        let res = self
            .client
            .get(format!("{}{path}", self.api))
            .send()
            .await
            .unwrap();
        res.json().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        self.get_json_at(&self.api, path).await
    }

    /// A GET on the API at `base` (another instance) with the operator token, expecting 200.
    pub async fn get_json_at(&self, base: &str, path: &str) -> Value {
        let res = self
            .client
            .get(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }

    /// A signed request with a JSON body; returns the status and the JSON answer (null when
    /// there is none).
    pub async fn send_json(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let res = self.signed(method, path, body.to_string().as_bytes()).await;
        kiln_testkit::answer::json(res).await.unwrap()
    }

    /// Submits a build and expects 202; returns the build id.
    pub async fn submit(&self, body: &Value) -> String {
        let res = self.post_build(body).await;
        let status = res.status();
        let json: Value = res.json().await.unwrap();
        assert_eq!(status, 202, "{json}");
        json["buildId"].as_str().unwrap().to_owned()
    }

    /// Starts one more builder daemon on this farm, named `name`, with its settings changed by
    /// `tweak`. It stops (drains) when the handle's `shutdown` is cancelled, and dies at once
    /// (as a `kill -9` would leave things: no renewal, no cleanup) when `task` is aborted.
    pub fn start_builder(&self, name: &str, tweak: impl FnOnce(&mut Settings)) -> BuilderHandle {
        let mut settings = self.settings.clone();
        settings.builder.id = Some(name.to_owned());
        settings.builder.concurrency = 1;
        tweak(&mut settings);
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { kiln_builder::run(settings, token).await });
        BuilderHandle { shutdown, task }
    }

    /// The `/metrics` text of the live builder `id`, found by its id in the fleet's answer
    /// (waited for: a daemon reports its listener with its first heartbeat).
    pub async fn builder_metrics(&self, id: &str) -> String {
        let started = Instant::now();
        loop {
            let fleet = self.get_json("/v1/builders").await;
            let addr = fleet["builders"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|b| b["id"] == id)
                .and_then(|b| b["metricsAddr"].as_str().map(str::to_owned));
            if let Some(addr) = addr {
                return self
                    .client
                    .get(format!("http://{addr}/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{fleet}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls a build until its status is `status`.
    pub async fn wait_for_status(&self, id: &str, status: &str) -> Value {
        self.poll_build(id, Duration::from_millis(25), Duration::from_secs(120), |b| {
            b["status"] == status
        })
        .await
        .unwrap_or_else(|t| panic!("{id} never {status}: {}", t.last))
    }

    /// Polls a build until it is deployed or failed.
    pub async fn wait(&self, id: &str) -> Value {
        self.poll_build(
            id,
            Duration::from_millis(50),
            Duration::from_secs(600),
            poll::finished,
        )
        .await
        .unwrap_or_else(|t| panic!("build {id} did not finish: {}", t.last))
    }

    /// Reads build `id` every `every` until `done` holds of its view, for at most `limit`.
    async fn poll_build(
        &self,
        id: &str,
        every: Duration,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, poll::TimedOut<Value>> {
        let path = format!("/v1/builds/{id}");
        poll::until(every, limit, || async {
            let build = self.get_json(&path).await;
            if done(&build) {
                Look::Ready(build)
            } else {
                Look::Seen(build)
            }
        })
        .await
    }

    /// A finished build's events, once its final one is recorded (builders record events in
    /// the background, so the row can say `deployed` a moment before `deploy_completed` exists).
    pub async fn final_events(&self, id: &str) -> Vec<Value> {
        let path = format!("/v1/builds/{id}/events?limit=1000");
        poll::until(Duration::from_millis(20), Duration::from_secs(30), || async {
            let events = self.get_json(&path).await["events"].as_array().unwrap().clone();
            let last = events.last().and_then(|e| e["type"].as_str()).unwrap_or_default();
            if [
                "deploy_completed",
                "build_failed",
                "build_cancelled",
                "build_superseded",
            ]
            .contains(&last)
            {
                Look::Ready(events)
            } else {
                Look::Seen(events)
            }
        })
        .await
        .unwrap_or_else(|t| panic!("build {id} has no final event: {:?}", t.last))
    }

    /// A build's whole stored log (or the live one so far).
    pub async fn log_text(&self, id: &str) -> String {
        self.get(&format!("/v1/builds/{id}/logs"))
            .await
            .text()
            .await
            .unwrap()
    }

    /// A GET on the preview listener with the given host label.
    pub async fn preview(&self, label: &str, path: &str) -> reqwest::Response {
        self.client
            .get(format!("http://127.0.0.1:{}{path}", self.preview_port))
            .header("Host", format!("{label}.localhost:{}", self.preview_port))
            .send()
            .await
            .unwrap()
    }

    pub async fn version_count(&self) -> i64 {
        sqlx::query_scalar("select count(*) from versions")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Blobs in the filesystem store (sharded in folders by their first two hex digits).
    pub fn blob_count(&self) -> usize {
        let dir = self
            .artifacts_dir
            .as_ref()
            .expect("a filesystem store")
            .join("blobs/sha256");
        let Ok(shards) = std::fs::read_dir(dir) else {
            return 0;
        };
        shards
            .map(|s| std::fs::read_dir(s.unwrap().path()).unwrap().count())
            .sum()
    }

    /// A connection to the farm's Redis, and its keys.
    pub async fn redis(&self) -> (redis::aio::MultiplexedConnection, kiln_shared::redis::Keys) {
        use secrecy::ExposeSecret;
        let conn = redis::Client::open(self.settings.redis.url.expose_secret())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        (
            conn,
            kiln_shared::redis::Keys::new(self.settings.redis.prefix.clone()),
        )
    }

    pub async fn queue_depth(&self) -> u64 {
        let pool =
            kiln_shared::redis::connect(&self.settings.redis.url, std::time::Duration::from_secs(2)).unwrap();
        kiln_shared::redis::Queue::new(
            pool,
            kiln_shared::redis::Keys::new(self.settings.redis.prefix.clone()),
        )
        .depth()
        .await
        .unwrap()
    }
}

pub fn build_body(user: &str, project: &str, files: Value) -> Value {
    json!({ "userId": user, "projectId": project, "files": files })
}
