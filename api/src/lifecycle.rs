//! Stopping and repeating builds: `POST /v1/builds/{id}/cancel` and `/retry`.
//!
//! A cancel records the build `cancelled` at once (fenced: only a queued or running build),
//! records its `build_cancelled` event, releases the project's slot and announces the cancel
//! to the builders. A queued build then never starts (its builder finds it not queued); the
//! daemon running a running one stops its process group (SIGTERM, then SIGKILL after
//! `KILN_CANCEL_GRACE_SECS`), and records nothing more.

use kiln_shared::db::events;
use kiln_shared::db::versions::{self, NewVersion, Version};
use kiln_shared::domain::{BuildStatus, EventType, VersionId};

use crate::admission::{self, Queued};
use crate::error::ApiError;
use crate::state::AppState;

/// Cancels a queued or running build; cancelling a cancelled build again is a no-op.
#[tracing::instrument(skip(state))]
pub async fn cancel(state: &AppState, id: VersionId) -> Result<Version, ApiError> {
    let cancelled = match versions::cancel(&state.db, id).await? {
        None => return Err(ApiError::NotFound(format!("build {id} not found"))),
        Some(Err(v)) if v.status == BuildStatus::Cancelled => return Ok(v),
        Some(Err(v)) => {
            return Err(ApiError::Conflict {
                message: format!("build {id} already ended: it is {}", v.status),
                build_id: id.to_string(),
            })
        }
        Some(Ok(v)) => v,
    };
    let was = if cancelled.started_at.is_some() {
        "running"
    } else {
        "queued"
    };
    tracing::info!(was, "build cancelled");
    state.metrics.build_finished("cancelled");
    state.metrics.cancelled();
    events::record(
        &state.db,
        id,
        EventType::BuildCancelled,
        &serde_json::json!({ "was": was }),
    )
    .await?;
    // The slot is free at once: the next build of the project need not wait for the cancelled
    // build's processes to end.
    if let Err(e) = state
        .queue
        .release(&id.to_string(), &cancelled.user_id, &cancelled.project_id)
        .await
    {
        tracing::warn!(error = %e, "cannot release the cancelled build's slot (a later admission releases it as stale)");
    }
    if let Err(e) = state.queue.announce_cancel(id).await {
        tracing::warn!(error = %e, "cannot announce the cancel (its builder notices at its next lease renewal)");
    }
    Ok(cancelled)
}

/// Queues a new build with the sources of a failed or cancelled one (a new id; `retryOf`
/// names the old build, and it starts from the same base).
#[tracing::instrument(skip(state))]
pub async fn retry(state: &AppState, id: VersionId) -> Result<Queued, ApiError> {
    let old = versions::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("build {id} not found")))?;
    if !matches!(old.status, BuildStatus::Failed | BuildStatus::Cancelled) {
        return Err(ApiError::Conflict {
            message: format!(
                "only a failed or cancelled build can be retried; build {id} is {}",
                old.status
            ),
            build_id: id.to_string(),
        });
    }
    admission::refuse_if_held(state, &old.user_id, &old.project_id).await?;
    let sources = old.sources(&state.artifacts).await?;
    admission::enqueue(
        state,
        NewVersion {
            id: VersionId::new(),
            user_id: old.user_id,
            project_id: old.project_id,
            project_label: old.project_label,
            prompt: old.prompt,
            framework: old.framework,
            parent_version_id: old.parent_version_id,
            generate: old.generate,
            source_manifest: sources,
            metadata: old.metadata,
            retry_of: Some(id),
            only_if_first: false,
        },
        admission::OnConflict::Reject,
    )
    .await?
    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("an unconditional insert was refused")))
}
