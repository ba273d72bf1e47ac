//! What every handler can reach ([`AppState`]), and the caches of things that never change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kiln_shared::config::Settings;

use crate::builds::{AdmissionDb, Builds};
use crate::events::EventHub;
use crate::limits::Limits;
use kiln_shared::db::PgPool;
use kiln_shared::domain::VersionId;
use kiln_shared::metrics::Metrics;
use kiln_shared::preview::PreviewUrls;
use kiln_shared::redis::{Fleet, Idempotency, LiveLogs, Queue, Signatures};
use kiln_shared::store::{Artifacts, Manifest};
use tokio_util::sync::CancellationToken;

/// What every handler can reach. Cloned per worker thread (everything inside is shared).
#[derive(Debug, Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: PgPool,
    pub queue: Queue,
    pub idempotency: Idempotency,
    /// The back end's signatures already used (replay protection).
    pub signatures: Signatures,
    pub artifacts: Artifacts,
    pub urls: PreviewUrls,
    pub cache: Arc<ImmutableCache>,
    /// Admission's batched Postgres statements.
    pub batch: AdmissionDb,
    /// This process's subscription to build events (shared by every worker).
    pub hub: EventHub,
    /// Builds' live log streams.
    pub live_logs: LiveLogs,
    /// The live builders (for queue estimates).
    pub fleet: Fleet,
    /// This process's metrics (`GET /metrics`).
    pub metrics: Metrics,
    /// Cancelled when the API starts shutting down: event and log streams end.
    pub closing: CancellationToken,
    /// The per-IP limiter and the open streams of this process.
    pub limits: Arc<Limits>,
    /// The fleet-wide quotas admission counts builds against.
    pub quotas: kiln_shared::redis::QuotaLimits,
}

impl AppState {
    /// The state of one API worker thread: the shared parts, plus a Redis connection of its
    /// own, opened on first use from the worker's own runtime, so a request's Redis I/O is
    /// driven by the thread serving it instead of hopping to another thread and back for every
    /// command. The admission batchers stay shared by all workers: one batch gathers every
    /// worker's rows, and Postgres' cost is mostly per statement (`ops/bench/run.sh admission`
    /// measured a shared batcher about 8% faster than one per worker).
    pub fn for_worker(&self) -> AppState {
        let mut state = self.clone();
        match self.queue.on_another_connection() {
            Ok(queue) => {
                // The replay check of signed requests runs on the worker's connection too.
                state.signatures = queue.signatures();
                state.queue = queue;
            }
            Err(e) => tracing::warn!(error = %e, "a worker shares the main Redis connection"),
        }
        state
    }

    /// What the build lifecycle works with, for one request.
    pub fn builds(&self) -> Builds<'_> {
        Builds {
            db: &self.db,
            queue: &self.queue,
            artifacts: &self.artifacts,
            urls: &self.urls,
            quotas: &self.quotas,
            batch: &self.batch,
            fleet: &self.fleet,
            metrics: &self.metrics,
            generator: self.settings.builder.generator_cmd.is_some(),
        }
    }
}

/// Caches of things that never change once written: a deployed version's output manifest key
/// and the manifests themselves. Bounded: when full it is emptied (a cache, not state).
#[derive(Debug, Default)]
pub struct ImmutableCache {
    manifest_keys: Mutex<HashMap<VersionId, String>>,
    manifests: Mutex<HashMap<String, Arc<Manifest>>>,
}

const CACHE_ENTRIES: usize = 1024;

fn bounded_insert<K: std::hash::Hash + Eq, V>(map: &Mutex<HashMap<K, V>>, k: K, v: V) {
    let mut map = map.lock().expect("cache lock poisoned");
    if map.len() >= CACHE_ENTRIES {
        map.clear();
    }
    map.insert(k, v);
}

impl ImmutableCache {
    pub fn manifest_key(&self, id: VersionId) -> Option<String> {
        self.manifest_keys
            .lock()
            .expect("cache lock poisoned")
            .get(&id)
            .cloned()
    }

    pub fn put_manifest_key(&self, id: VersionId, key: String) {
        bounded_insert(&self.manifest_keys, id, key);
    }

    pub fn manifest(&self, key: &str) -> Option<Arc<Manifest>> {
        self.manifests
            .lock()
            .expect("cache lock poisoned")
            .get(key)
            .cloned()
    }

    pub fn put_manifest(&self, key: String, manifest: Arc<Manifest>) {
        bounded_insert(&self.manifests, key, manifest);
    }
}
