//! What every handler can reach ([`AppState`]), and the caches of things that never change.

use std::sync::Arc;

use kiln_shared::config::Settings;

use crate::builds::{AdmissionDb, Builds};
use crate::events::EventHub;
use crate::limits::Limits;
use kiln_shared::db::PgPool;
use kiln_shared::domain::{ProjectId, UserId, VersionId};
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
    /// The keys projects' secrets are sealed with (`None`: setting a secret is refused).
    pub keyring: Option<Arc<kiln_shared::secrets::Keyring>>,
    /// This instance's background task of user deletions (woken when one is recorded).
    pub deleter: crate::lifecycle::Deleter,
    /// This instance's copies of public projects' gates (dropped on every change, by
    /// Pub/Sub).
    pub near_gates: crate::preview::near::NearGates,
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

    /// Tells every instance (and this one at once) that a project's row changed: the preview
    /// gate's cached copies go.
    pub async fn forget_project(
        &self,
        user: &kiln_shared::domain::UserId,
        project: &kiln_shared::domain::ProjectId,
    ) -> Result<(), crate::error::ApiError> {
        self.queue.forget_project(user, project).await?;
        self.near_gates.forget(user, project);
        Ok(())
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
/// (with its user and project) and the manifests themselves (moka: bounded, the least recently used leave first; a cache,
/// not state: every API instance keeps its own).
#[derive(Debug)]
pub struct ImmutableCache {
    manifest_keys: moka::sync::Cache<VersionId, Deployed>,
    manifests: moka::sync::Cache<String, Arc<Manifest>>,
}

/// What the preview server remembers of a deployed version: its output manifest's key and its
/// project (none of which ever changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub manifest_key: String,
    pub user: UserId,
    pub project: ProjectId,
}

/// Versions whose manifest key is remembered (a key and ids are about 250 bytes).
const MANIFEST_KEYS: u64 = 100_000;
/// Memory the remembered manifests may take, by their estimated size: a manifest with inline
/// files can be large, so the bound is in bytes, not entries.
const MANIFEST_BYTES: u64 = 64 * 1024 * 1024;

impl Default for ImmutableCache {
    fn default() -> Self {
        ImmutableCache {
            manifest_keys: moka::sync::Cache::new(MANIFEST_KEYS),
            manifests: moka::sync::Cache::builder()
                .max_capacity(MANIFEST_BYTES)
                .weigher(|key: &String, manifest: &Arc<Manifest>| {
                    let bytes = key.len() as u64 + manifest.estimated_memory();
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }
}

impl ImmutableCache {
    pub fn deployed(&self, id: VersionId) -> Option<Deployed> {
        self.manifest_keys.get(&id)
    }

    pub fn put_deployed(&self, id: VersionId, deployed: Deployed) {
        self.manifest_keys.insert(id, deployed);
    }

    pub fn manifest(&self, key: &str) -> Option<Arc<Manifest>> {
        self.manifests.get(key)
    }

    pub fn put_manifest(&self, key: String, manifest: Arc<Manifest>) {
        self.manifests.insert(key, manifest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_of(inline_bytes: usize) -> Arc<Manifest> {
        let mut m = Manifest::default();
        m.insert("index.html", "h".repeat(64), inline_bytes as u64);
        m.files.get_mut("index.html").unwrap().inline = Some("x".repeat(inline_bytes));
        Arc::new(m)
    }

    #[test]
    fn manifests_are_bounded_by_their_size_not_their_number() {
        let cache = ImmutableCache::default();
        // Three manifests of ~30 MB each cannot all stay within 64 MB.
        for key in ["a", "b", "c"] {
            cache.put_manifest(key.into(), manifest_of(30 * 1024 * 1024));
        }
        cache.manifests.run_pending_tasks();
        let kept = ["a", "b", "c"]
            .iter()
            .filter(|k| cache.manifest(k).is_some())
            .count();
        assert!(kept <= 2, "{kept} manifests of 30 MB kept");
        assert!(cache.manifests.weighted_size() <= MANIFEST_BYTES);
        // Many small ones all fit.
        for i in 0..2_000 {
            cache.put_manifest(format!("small-{i}"), manifest_of(10));
        }
        cache.manifests.run_pending_tasks();
        assert!(cache.manifest("small-1999").is_some());
        assert!(
            cache.manifest("small-0").is_some(),
            "a small manifest was evicted"
        );
    }
}
