//! Stopping a build: `POST /v1/builds/{id}/cancel`, and a running build replaced by a newer
//! request (`onConflict: cancel-running`).
//!
//! A cancel records the build `cancelled` at once (fenced: only a queued or running build),
//! records its `build_cancelled` event, releases the project's slot and announces the cancel
//! to the builders. A queued build then never starts (its builder finds it not queued); the
//! daemon running a running one stops its process group (SIGTERM, then SIGKILL after
//! `KILN_CANCEL_GRACE_SECS`), and records nothing more.

use kiln_shared::db::events;
use kiln_shared::db::versions::{self, Version};
use kiln_shared::domain::{BuildStatus, EventType, VersionId};

use super::context::Builds;
use super::slot::SlotHolder;
use crate::error::ApiError;

/// Cancels a queued or running build; cancelling a cancelled build again is a no-op.
#[tracing::instrument(skip(b))]
pub async fn cancel(b: &Builds<'_>, id: VersionId) -> Result<Version, ApiError> {
    let cancelled = match versions::cancel(b.db, id).await? {
        None => return Err(ApiError::NotFound(format!("build {id} not found"))),
        Some(Err(v)) if v.status == BuildStatus::Cancelled => return Ok(v),
        Some(Err(v)) => {
            return Err(ApiError::WrongStatus {
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
    b.metrics.build_finished("cancelled");
    b.metrics.cancelled();
    events::record(
        b.db,
        id,
        EventType::BuildCancelled,
        &serde_json::json!({ "was": was }),
    )
    .await?;
    // The slot is free at once: the next build of the project need not wait for the cancelled
    // build's processes to end.
    let holder = SlotHolder::Build(id).to_string();
    if let Err(e) = b
        .queue
        .release(&holder, &cancelled.user_id, &cancelled.project_id)
        .await
    {
        tracing::warn!(error = %e, "cannot release the cancelled build's slot (a later admission releases it as stale)");
    }
    if let Err(e) = b.queue.announce_cancel(id).await {
        tracing::warn!(error = %e, "cannot announce the cancel (its builder notices at its next lease renewal)");
    }
    Ok(cancelled)
}
