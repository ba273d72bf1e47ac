//! One project deleted, in this order:
//!
//! 1. its `projects` row (and its environment): from now on its preview hosts answer 404 (the
//!    preview gate's cached copy is dropped with `forget_project`);
//! 2. its queued or running builds cancelled through the usual cancel path (the builder running
//!    one stops it; the project's slot is released);
//! 3. its versions, [`BATCH`] at a time, each batch one short transaction with the build events
//!    and webhook deliveries of those builds; then each batch's logs and the versions' own
//!    manifests in the artifact store (what a failed store delete leaves, the maintenance GC
//!    removes: it deletes the manifests and logs of versions that no longer exist);
//! 4. the row again (a build admitted meanwhile made it anew; that build's version went with
//!    the batches) and the project's Redis keys: latest pointer, label, slot, quota window,
//!    cached gate.
//!
//! Idempotency records that answered with one of its builds are keyed by the client's key and
//! cannot be found by project: they expire by themselves (after a week); a replay of such a
//! request answers what it first answered, whose build is now a 404.

use futures::{StreamExt, TryStreamExt};
use kiln_shared::db::projects::delete::{self, Removed};
use kiln_shared::domain::{ProjectId, UserId, VersionId};
use kiln_shared::store::Artifacts;
use serde::Serialize;
use utoipa::ToSchema;

use crate::builds::{self, Builds};
use crate::error::ApiError;

/// Versions deleted per transaction.
pub const BATCH: i64 = 500;
/// Store deletes in flight at once.
const PARALLEL: usize = 16;

/// What a project's deletion removed.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    pub versions: u64,
    /// Build events of its builds.
    pub events: u64,
    /// Webhook deliveries of its builds (with their attempts).
    pub deliveries: u64,
    /// Environment values and secrets.
    pub env: u64,
    /// Build logs deleted from the artifact store.
    pub logs: u64,
    /// The versions' own manifests deleted from the artifact store.
    pub manifests: u64,
    /// Builds that were queued or running, cancelled first.
    #[schema(value_type = Vec<String>)]
    pub cancelled: Vec<VersionId>,
    /// Redis keys removed (latest pointer, label, slot, quota window, cached gate).
    pub keys: u64,
}

/// Deletes the project; `None` when it has nothing left (no row, no version).
#[tracing::instrument(skip(b), fields(%user, %project))]
pub async fn delete_project(
    b: &Builds<'_>,
    user: &UserId,
    project: &ProjectId,
) -> Result<Option<Deleted>, ApiError> {
    if !delete::exists(b.db, user, project).await? {
        return Ok(None);
    }
    let mut deleted = Deleted {
        env: delete::delete_row(b.db, user, project).await?.unwrap_or(0),
        ..Deleted::default()
    };
    forget(b, user, project).await;
    for id in delete::active_builds(b.db, user, project).await? {
        match builds::cancel(b, id).await {
            Ok(_) => deleted.cancelled.push(id),
            // It ended (or went) in between: nothing to stop.
            Err(ApiError::NotFound(_) | ApiError::WrongStatus { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let mut removed = Removed::default();
    loop {
        let batch = delete::delete_versions(b.db, user, project, BATCH).await?;
        if batch.versions == 0 {
            break;
        }
        removed.add_counts(&batch);
        let (logs, manifests) = remove_objects(b.artifacts, &batch).await;
        deleted.logs += logs;
        deleted.manifests += manifests;
    }
    deleted.versions = removed.versions;
    deleted.events = removed.events;
    deleted.deliveries = removed.deliveries;
    deleted.env += delete::delete_row(b.db, user, project).await?.unwrap_or(0);
    deleted.keys = b.queue.remove_project(user, project).await?;
    forget(b, user, project).await;
    tracing::info!(
        versions = deleted.versions,
        cancelled = deleted.cancelled.len(),
        "project deleted"
    );
    Ok(Some(deleted))
}

/// Drops the cached preview gate; a failure is logged (the cached copy expires by itself).
async fn forget(b: &Builds<'_>, user: &UserId, project: &ProjectId) {
    if let Err(e) = b.queue.forget_project(user, project).await {
        tracing::warn!(error = %e, "cannot drop the project's cached gate (it expires by itself)");
    }
}

/// Deletes a batch's logs and own manifests from the store: how many of each. A failure is
/// logged, not fatal: the maintenance GC deletes what is left.
async fn remove_objects(artifacts: &Artifacts, batch: &Removed) -> (u64, u64) {
    let logs: Vec<String> = batch.ids.iter().map(|id| Artifacts::log_key(*id)).collect();
    let store = artifacts.objects();
    let delete_all = |keys: Vec<String>| async move {
        let n = keys.len() as u64;
        futures::stream::iter(
            keys.into_iter()
                .map(|key| async move { store.delete(&key).await }),
        )
        .buffer_unordered(PARALLEL)
        .try_collect::<Vec<()>>()
        .await
        .map(|_| n)
    };
    let mut counts = [0u64; 2];
    for (i, keys) in [logs, batch.manifest_keys.clone()].into_iter().enumerate() {
        match delete_all(keys).await {
            Ok(n) => counts[i] = n,
            Err(e) => {
                tracing::warn!(error = %e, "cannot delete a deleted project's objects (maintenance will)")
            }
        }
    }
    (counts[0], counts[1])
}
