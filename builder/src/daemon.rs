//! The daemon: `concurrency` workers, each taking one build at a time and running it: first a
//! build whose builder was lost (its claim unrenewed for a lease), else a new one from the
//! stream's consumer group. Shutdown (a drain) stops claiming; builds in progress may finish
//! until `KILN_DRAIN_SECS`, then go back to the queue.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kiln_shared::config::Settings;
use kiln_shared::db::PgPool;
use kiln_shared::domain::VersionId;
use kiln_shared::metrics::Metrics;
use kiln_shared::preview::PreviewUrls;
use kiln_shared::redis::{Fleet, Job, Keys, LiveLogs, Queue, StreamReader};
use kiln_shared::store::Artifacts;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::job;
use crate::lease::{Running, Stop};
use crate::log::Redactor;
use crate::metrics::MetricsServer;

/// How long one read waits for a new build before looking for lost ones and for shutdown
/// again: a lost build is reclaimed at most this long after its lease ran out.
const BLOCK: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the daemon's uptime interval in Postgres is extended.
const UPTIME_EVERY: Duration = Duration::from_secs(60);
/// The longest the daemon waits for one (non-blocking) Redis command.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the pnpm store's size is measured for the fleet report (a walk of the store).
const STORE_SIZE_EVERY: Duration = Duration::from_secs(600);
/// How long a worker waits after putting back a build whose user is at the running cap, so
/// that a queue holding only such builds is not read in a tight loop.
const DEFER_PAUSE: Duration = Duration::from_millis(250);

/// node and pnpm versions, recorded with every version for deterministic rebuilds.
#[derive(Debug, Clone, Default)]
pub struct Toolchain {
    pub node: Option<String>,
    pub pnpm: Option<String>,
}

/// What one step of a worker did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// A build was taken and its outcome recorded.
    Built(VersionId),
    /// Nothing was waiting.
    Empty,
    /// A build was read, but its user runs as many builds as `KILN_MAX_RUNNING_PER_USER`
    /// allows: it went back to the end of the queue.
    Deferred(VersionId),
}

/// One daemon's connections and settings.
#[derive(Debug)]
pub struct Builder {
    pub(crate) settings: Arc<Settings>,
    pub(crate) db: PgPool,
    pub(crate) queue: Queue,
    pub(crate) artifacts: Artifacts,
    pub(crate) urls: PreviewUrls,
    pub(crate) toolchain: Toolchain,
    pub(crate) live_logs: LiveLogs,
    pub(crate) redactor: Redactor,
    pub(crate) fleet: Fleet,
    pub(crate) events: crate::events::EventSink,
    pub(crate) running: Running,
    pub(crate) metrics: Metrics,
    consumer: String,
    pub(crate) confinement: Arc<crate::sandbox::Confinement>,
    /// Install sandboxes started ahead of builds, one per worker slot.
    pub(crate) warm: Option<crate::sandbox::warm::WarmPool>,
    /// The dependency audit, when `KILN_AUDIT` is on.
    pub(crate) auditor: Option<Arc<crate::audit::Auditor>>,
}

impl Builder {
    /// Connects to Postgres (applying migrations), Redis and the artifact store, and creates
    /// the consumer group.
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let db = kiln_shared::db::connect(&settings.database_url, (settings.builder_concurrency as u32) + 2)?;
        kiln_shared::db::migrate(&db)
            .await
            .context("applying migrations")?;
        let pool = kiln_shared::redis::connect(&settings.redis_url, REDIS_TIMEOUT)?;
        let keys = Keys::new(settings.redis_prefix.clone());
        let live_logs = LiveLogs::new(pool.clone(), keys.clone());
        let fleet = Fleet::new(pool.clone(), keys.clone(), kiln_shared::redis::fleet::LEASE);
        let queue = Queue::new(pool, keys);
        queue
            .ensure_group()
            .await
            .context("creating the consumer group")?;
        let artifacts = Artifacts::open(&settings.artifacts, &settings.s3).await?;
        for dir in [&settings.work_dir, &settings.pnpm_store] {
            tokio::fs::create_dir_all(dir)
                .await
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        let preview_port = settings.preview_public_port.or_else(|| {
            settings
                .preview_addr
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
        });
        let urls = PreviewUrls {
            scheme: settings.preview_scheme.clone(),
            domain: settings.preview_domain.clone(),
            port: preview_port,
        };
        let consumer = settings.builder_id.clone().unwrap_or_else(default_consumer);
        let toolchain = Toolchain {
            node: version_of("node").await,
            pnpm: version_of("pnpm").await,
        };
        if toolchain.pnpm.is_none() {
            tracing::warn!("pnpm is not on PATH: builds with a package.json will fail at install");
        }
        tracing::info!(consumer, node = ?toolchain.node, pnpm = ?toolchain.pnpm, "builder connected");
        let confinement = Arc::new(crate::sandbox::Confinement::probe(&settings).await?);
        let warm = crate::sandbox::warm::WarmPool::start(
            confinement.clone(),
            settings.builder_concurrency,
            settings.sandbox.warm,
        );
        let auditor = match (&settings.audit.mode, &settings.audit.db) {
            (kiln_shared::config::AuditMode::Off, _) | (_, None) => None,
            (mode, Some(dir)) => {
                let dir = dir.clone();
                let auditor = tokio::task::spawn_blocking(move || crate::audit::Auditor::open(&dir))
                    .await
                    .context("loading the advisory database")??;
                tracing::info!(?mode, "dependency audit on");
                Some(Arc::new(auditor))
            }
        };
        let redactor = Redactor::new(settings.secret_values());
        let events = crate::events::EventSink::start(db.clone(), queue.clone(), settings.build_events);
        Ok(Self {
            settings: Arc::new(settings),
            db,
            queue,
            artifacts,
            urls,
            toolchain,
            live_logs,
            redactor,
            fleet,
            events,
            running: Running::default(),
            confinement,
            warm,
            auditor,
            metrics: Metrics::new("builder"),
            consumer,
        })
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// How long starting (or taking over) a build waits for an unreachable Postgres: half a
    /// lease, since nothing renews the entry's claim until the build has started.
    pub(crate) fn claim_patience(&self) -> Duration {
        self.settings.fleet.lease / 2
    }

    /// A reader of the build stream for one worker (its own Redis connection).
    pub fn reader(&self) -> StreamReader {
        self.queue.reader(BLOCK)
    }

    /// The next build for this daemon: one whose builder was lost, else a new one (waiting up
    /// to the reader's block).
    pub async fn next_job(&self, reader: &mut StreamReader) -> anyhow::Result<Option<Job>> {
        if let Some(job) = self
            .queue
            .reclaim(&self.consumer, self.settings.fleet.lease)
            .await?
        {
            return Ok(Some(job));
        }
        Ok(reader.read(&self.consumer).await?)
    }

    /// `KILN_MAX_RUNNING_PER_USER`: takes one of the job's user's running slots (fleet-wide,
    /// in Redis). When they are all taken, a new build goes back to the end of the queue (true:
    /// deferred), so other users' builds behind it run meanwhile; a build taken over from a
    /// lost builder runs anyway (it was counted when it started).
    pub async fn defer_over_user_cap(&self, job: &Job) -> anyhow::Result<bool> {
        let Some(cap) = self.settings.fleet.max_running_per_user else {
            return Ok(false);
        };
        let lease = self.settings.fleet.lease;
        if self
            .queue
            .take_user_slot(&job.user_id, job.build_id, &self.consumer, cap, lease)
            .await?
        {
            return Ok(false);
        }
        if job.reclaimed {
            tracing::info!(build_id = %job.build_id, user_id = %job.user_id,
                "taking over a build although its user is at the running cap");
            return Ok(false);
        }
        if !self.queue.hand_back(&self.consumer, job, false).await? {
            tracing::warn!(build_id = %job.build_id, "the build's entry was reclaimed before it could be put back");
        }
        tracing::debug!(build_id = %job.build_id, user_id = %job.user_id, cap,
            "the user's running builds are at the cap; the build goes back to the queue");
        Ok(true)
    }

    /// Runs a claimed job to its recorded outcome (or hands it on), then frees its user's
    /// running slot.
    pub async fn execute(&self, job: &Job) -> anyhow::Result<VersionId> {
        // Held for the whole build: the host's upkeep never prunes the store under it.
        let store_use = crate::upkeep::StoreUse::acquire(&self.settings.work_dir).await?;
        let outcome = job::execute(self, job).await;
        drop(store_use);
        if self.settings.fleet.max_running_per_user.is_some() {
            if let Err(e) = self
                .queue
                .free_user_slot(&job.user_id, job.build_id, &self.consumer)
                .await
            {
                tracing::warn!(build_id = %job.build_id, error = %e,
                    "cannot free the user's running slot; it frees itself after the lease");
            }
        }
        outcome
    }

    /// Takes and runs at most one build.
    pub async fn step(&self, reader: &mut StreamReader) -> anyhow::Result<StepOutcome> {
        let Some(job) = self.next_job(reader).await? else {
            return Ok(StepOutcome::Empty);
        };
        // The host's upkeep began while this worker waited on the stream: the build goes
        // back to the queue (another host may take it) instead of waiting here.
        if crate::upkeep::paused(&self.settings.work_dir) {
            if !self.queue.hand_back(&self.consumer, &job, job.reclaimed).await? {
                tracing::warn!(build_id = %job.build_id, "the build's entry was reclaimed before it could be put back");
            }
            tracing::info!(build_id = %job.build_id, "the host's upkeep runs: the build goes back to the queue");
            return Ok(StepOutcome::Deferred(job.build_id));
        }
        if self.defer_over_user_cap(&job).await? {
            return Ok(StepOutcome::Deferred(job.build_id));
        }
        self.execute(&job).await.map(StepOutcome::Built)
    }
}

fn default_consumer() -> String {
    let host = hostname();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    )
}

async fn version_of(program: &str) -> Option<String> {
    let out = tokio::process::Command::new(program)
        .arg("--version")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches('v')
            .to_owned()
    })
}

/// Runs the daemon until `shutdown` is cancelled; builds in progress are finished first.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let concurrency = settings.builder_concurrency;
    let builder = Arc::new(Builder::connect(settings).await?);
    let metrics_server = match &builder.settings.metrics_addr {
        Some(addr) => Some(MetricsServer::start(addr, builder.clone())?),
        None => None,
    };
    let metrics_addr = metrics_server.as_ref().map(|m| m.addr);
    let tracker = TaskTracker::new();
    for slot in 0..concurrency {
        tracker.spawn(worker(builder.clone(), shutdown.clone(), slot));
    }
    tracker.close();
    // The heartbeat and the cancel listener last until the last build is over (a draining
    // daemon still runs builds).
    let stop_listening = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat(
        builder.clone(),
        metrics_addr,
        shutdown.clone(),
        stop_listening.clone(),
    ));
    let cancels = tokio::spawn(listen_for_cancels(builder.clone(), stop_listening.clone()));
    let drain = tokio::spawn(drain_deadline(builder.clone(), shutdown.clone()));
    let reconciler = tokio::spawn(crate::reconcile::run(builder.clone(), shutdown.clone()));
    // A draining daemon starts no build: its warm sandboxes go at once.
    let cool = builder.warm.clone().map(|pool| {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            pool.close();
        })
    });
    // Webhook deliveries run in every daemon of the farm, builders included.
    let deliveries = builder.settings.webhooks.deliver.then(|| {
        let worker = kiln_shared::webhooks::Worker::new(
            builder.db.clone(),
            builder.settings.webhooks.clone(),
            builder.metrics.clone(),
        );
        tokio::spawn(worker.run(shutdown.clone()))
    });
    tracker.wait().await;
    drain.abort();
    if let Some(cool) = cool {
        cool.abort();
    }
    if let Some(pool) = &builder.warm {
        pool.close();
    }
    let _ = reconciler.await;
    stop_listening.cancel();
    let _ = cancels.await;
    let _ = heartbeat.await;
    if let Some(d) = deliveries {
        let _ = d.await;
    }
    if let Err(e) = builder.fleet.leave(&builder.consumer).await {
        tracing::warn!(error = %e, "cannot leave the fleet; the lease will run out");
    }
    if let Some(server) = metrics_server {
        server.stop().await;
    }
    Ok(())
}

/// Tells the fleet this daemon is alive until shutdown, and what it runs (queue estimates
/// count its slots; `GET /v1/builders` shows its report); records its uptime in Postgres.
async fn heartbeat(
    builder: Arc<Builder>,
    metrics_addr: Option<std::net::SocketAddr>,
    shutdown: CancellationToken,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(kiln_shared::redis::fleet::HEARTBEAT_EVERY);
    let started_at = chrono::Utc::now();
    let host = hostname();
    let version = env!("CARGO_PKG_VERSION");
    // Uptime intervals close after a 30-minute gap: a Postgres write a minute is plenty.
    let mut uptime_recorded: Option<tokio::time::Instant> = None;
    let store_bytes = Arc::new(AtomicU64::new(UNMEASURED));
    // A fresh measurement is reported at once rather than at the next tick.
    let measured = Arc::new(tokio::sync::Notify::new());
    let measuring = tokio::spawn(measure_store(
        builder.settings.pnpm_store.clone(),
        store_bytes.clone(),
        measured.clone(),
        stop.clone(),
    ));
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                measuring.abort();
                return;
            }
            _ = every.tick() => {}
            () = measured.notified() => {}
        }
        let capacity = builder.settings.builder_concurrency;
        let running: Vec<serde_json::Value> = builder
            .running
            .snapshot()
            .into_iter()
            .map(|(id, event)| serde_json::json!({ "buildId": id, "lastEvent": event }))
            .collect();
        let report = serde_json::json!({
            "host": host,
            "version": version,
            "capacity": capacity,
            "running": running,
            "node": builder.toolchain.node,
            "pnpm": builder.toolchain.pnpm,
            "startedAt": started_at,
            "draining": shutdown.is_cancelled(),
            "storeBytes": Some(store_bytes.load(Ordering::Relaxed)).filter(|b| *b != UNMEASURED),
            "metricsAddr": metrics_addr,
            "sandbox": builder.confinement.describe(),
            "warmSandboxes": builder.warm.as_ref().map(|pool| {
                let (idle, made) = pool.counts();
                serde_json::json!({ "idle": idle, "made": made })
            }),
        });
        let sent = builder
            .fleet
            .heartbeat(&builder.consumer, capacity, &report)
            .await;
        builder.metrics.heartbeat(sent.is_ok());
        if let Err(e) = sent {
            tracing::warn!(error = %e, "cannot heartbeat");
        }
        if uptime_recorded.is_some_and(|at| at.elapsed() < UPTIME_EVERY) {
            continue;
        }
        match kiln_shared::db::fleet::heartbeat(&builder.db, &builder.consumer, &host, version).await {
            Ok(()) => uptime_recorded = Some(tokio::time::Instant::now()),
            Err(e) => tracing::warn!(error = %e, "cannot record the builder's uptime"),
        }
    }
}

const UNMEASURED: u64 = u64::MAX;

/// Measures the shared pnpm store's size every [`STORE_SIZE_EVERY`] into `bytes` (for the fleet
/// report), on a blocking thread: a large store takes a while to walk. Each measurement wakes
/// the heartbeat through `measured`.
async fn measure_store(
    store: PathBuf,
    bytes: Arc<AtomicU64>,
    measured: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) {
    loop {
        let dir = store.clone();
        match tokio::task::spawn_blocking(move || disk_usage(&dir)).await {
            Ok(size) => {
                bytes.store(size, Ordering::Relaxed);
                measured.notify_one();
            }
            Err(e) => tracing::warn!(error = %e, "cannot measure the pnpm store"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(STORE_SIZE_EVERY) => {}
        }
    }
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

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "builder".into())
}

/// Once shutdown is asked for, running builds have `KILN_DRAIN_SECS` to finish; then they are
/// stopped and handed back to the queue.
async fn drain_deadline(builder: Arc<Builder>, shutdown: CancellationToken) {
    shutdown.cancelled().await;
    let running = builder.running.builds();
    if running.is_empty() {
        return;
    }
    let drain = builder.settings.fleet.drain;
    tracing::info!(
        builds = running.len(),
        drain_secs = drain.as_secs(),
        "draining: running builds may finish"
    );
    tokio::time::sleep(drain).await;
    let stopped = builder.running.stop_all(Stop::Drained);
    if stopped > 0 {
        tracing::warn!(
            builds = stopped,
            "drain deadline passed: handing the running builds back to the queue"
        );
    }
}

/// Stops this daemon's running builds that a client cancels (announced on Pub/Sub; the lease
/// keeper's status check backs it up if an announcement is missed).
async fn listen_for_cancels(builder: Arc<Builder>, stop: CancellationToken) {
    use futures::StreamExt;
    let channel = builder.queue.keys().cancels();
    while !stop.is_cancelled() {
        let mut pubsub = match builder.queue.redis().pubsub().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for cancels; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if let Err(e) = pubsub.subscribe(&channel).await {
            tracing::warn!(error = %e, "cannot subscribe to cancels; retrying");
            continue;
        }
        let mut messages = pubsub.on_message();
        loop {
            let msg = tokio::select! {
                () = stop.cancelled() => return,
                msg = messages.next() => msg,
            };
            let Some(msg) = msg else { break }; // the connection dropped: subscribe again
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            if let Ok(build) = VersionId::parse(&payload) {
                if builder.running.stop(build, Stop::Cancelled) {
                    tracing::info!(build_id = %build, "build cancelled by a client");
                }
            }
        }
    }
}

async fn worker(builder: Arc<Builder>, shutdown: CancellationToken, slot: usize) {
    let mut backoff = Duration::ZERO;
    let mut reader = builder.reader();
    // Shutdown is checked between reads: a read is never abandoned half-way (Redis could have
    // handed it an entry), so stopping takes at most one block.
    let mut paused = false;
    while !shutdown.is_cancelled() {
        // The host's upkeep (`kiln-builder maintain`) is waiting for the store: claim nothing.
        if crate::upkeep::paused(&builder.settings.work_dir) {
            if !paused {
                tracing::info!(
                    slot,
                    "the host's upkeep runs: no builds are claimed until it ends"
                );
                paused = true;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        paused = false;
        match builder.step(&mut reader).await {
            Ok(StepOutcome::Deferred(_)) => {
                backoff = Duration::ZERO;
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(DEFER_PAUSE) => {}
                }
            }
            Ok(_) => backoff = Duration::ZERO,
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(250), MAX_BACKOFF);
                tracing::error!(
                    slot,
                    error = format!("{e:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "worker error"
                );
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
    tracing::info!(slot, "worker stopped");
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
