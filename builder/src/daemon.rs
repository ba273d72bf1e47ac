//! The daemon: [`run`] starts `concurrency` workers ([`crate::worker`]) on one [`Builder`] and,
//! beside them, its background tasks: the fleet heartbeat (with the pnpm store's measurement),
//! the cancel listener, the drain deadline, the reconciler, the warm pool's cooling and webhook
//! deliveries. Shutdown (a drain) stops claiming; builds in progress may finish until
//! `KILN_DRAIN_SECS`, then go back to the queue.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kiln_shared::backoff::Backoff;
use kiln_shared::config::Settings;
use kiln_shared::domain::VersionId;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::{hostname, Builder};
use crate::lease::Stop;
use crate::metrics::MetricsServer;
use crate::upkeep::disk_usage;
use crate::worker::worker;

/// How often the daemon's uptime interval in Postgres is extended.
const UPTIME_EVERY: Duration = Duration::from_secs(60);
/// How often the pnpm store's size is measured for the fleet report (a walk of the store).
const STORE_SIZE_EVERY: Duration = Duration::from_secs(600);

/// Runs the daemon until `shutdown` is cancelled; builds in progress are finished first.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let concurrency = settings.builder.concurrency;
    let builder = Arc::new(Builder::connect(settings).await?);
    let metrics_server = match &builder.settings.builder.metrics_addr {
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
    builder.close();
    let _ = reconciler.await;
    stop_listening.cancel();
    let _ = cancels.await;
    let _ = heartbeat.await;
    if let Some(d) = deliveries {
        let _ = d.await;
    }
    if let Err(e) = builder.fleet.leave(builder.consumer()).await {
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
        builder.settings.builder.pnpm_store.clone(),
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
        let capacity = builder.settings.builder.concurrency;
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
            .heartbeat(builder.consumer(), capacity, &report)
            .await;
        builder.metrics.heartbeat(sent.is_ok());
        if let Err(e) = sent {
            tracing::warn!(error = %e, "cannot heartbeat");
        }
        if uptime_recorded.is_some_and(|at| at.elapsed() < UPTIME_EVERY) {
            continue;
        }
        match kiln_shared::db::fleet::heartbeat(&builder.db, builder.consumer(), &host, version).await {
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
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
    while !stop.is_cancelled() {
        let subscribed = match builder.queue.redis().pubsub().await {
            Ok(mut p) => p.subscribe(&channel).await.map(|()| p).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let mut pubsub = match subscribed {
            Ok(p) => p,
            Err(e) => {
                // (A failed subscribe retried at once before: a busy loop while Redis refused.)
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot listen for cancels; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(delay) => continue,
                }
            }
        };
        backoff.reset();
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
