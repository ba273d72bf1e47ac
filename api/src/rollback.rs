//! Rollback: a pointer move. A new version row (kind `rollback`, parent = the target, the
//! target's manifests) and the KV latest pointer flips; nothing is rebuilt or re-uploaded.
//!
//! The project's in-flight slot is held while the two writes happen, so a rollback never
//! interleaves with a build of the project (the build would overwrite the pointer) or with
//! another rollback (two winners would leave the pointer and the history disagreeing).

use std::time::Duration;

use kiln_shared::db::versions::{self, Version};
use kiln_shared::domain::{BuildStatus, ProjectId, UserId, VersionId};
use kiln_shared::redis::LatestPointer;

use crate::error::ApiError;
use crate::state::AppState;

/// A rollback's hold on the project's slot ends by itself after this, if the API dies mid-way.
const HOLD: Duration = Duration::from_secs(10);

/// The slot value of a rollback in progress: never taken for a stale build claim.
pub fn slot_value(id: VersionId) -> String {
    format!("rollback:{id}")
}

/// Rolls the project back (or forward: redo is a rollback to a later version) to `target_id`.
#[tracing::instrument(skip_all, fields(user_id = %user, project_id = %project, target = %target_id))]
pub async fn rollback(
    state: &AppState,
    user: &UserId,
    project: &ProjectId,
    target_id: VersionId,
) -> Result<Version, ApiError> {
    let target = versions::get(&state.db, target_id)
        .await?
        .filter(|t| &t.user_id == user && &t.project_id == project)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "version {target_id} is not a version of project {user}/{project}"
            ))
        })?;
    if target.status != BuildStatus::Deployed {
        return Err(ApiError::Conflict {
            message: format!(
                "version {target_id} is {}; only a deployed version can be rolled back to",
                target.status
            ),
            build_id: target_id.to_string(),
        });
    }

    let id = VersionId::new();
    let hold = slot_value(id);
    if let Some(holder) = state.queue.hold(&hold, user, project, HOLD).await? {
        let (what, build_id) = match holder.strip_prefix("rollback:") {
            Some(other) => (
                "another rollback of this project is in progress",
                other.to_owned(),
            ),
            None => ("a build of this project is queued or running", holder),
        };
        return Err(ApiError::Conflict {
            message: format!("{what}: {build_id}; try again when it is over"),
            build_id,
        });
    }
    let outcome = flip(state, id, &target).await;
    if let Err(e) = state.queue.release(&hold, user, project).await {
        tracing::warn!(error = %e, "cannot release the rollback's hold; it expires by itself");
    }
    outcome
}

async fn flip(state: &AppState, id: VersionId, target: &Version) -> Result<Version, ApiError> {
    let version = versions::insert_rollback(&state.db, id, target).await?;
    let pointer = LatestPointer {
        latest_version_id: id,
        preview_url: state.urls.version_url(id),
        timestamp: version.finished_at.unwrap_or(version.created_at),
    };
    if let Err(e) = state
        .queue
        .set_latest(&version.user_id, &version.project_id, &pointer)
        .await
    {
        // The pointer did not move: the rollback did not happen.
        versions::delete_rollback(&state.db, id).await?;
        return Err(e.into());
    }
    tracing::info!(version = %id, "rolled back");
    Ok(version)
}
