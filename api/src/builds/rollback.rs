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

use super::context::Builds;
use super::slot::SlotHolder;
use crate::error::ApiError;

/// A rollback's hold on the project's slot ends by itself after this, if the API dies mid-way.
const HOLD: Duration = Duration::from_secs(10);

/// Rolls the project back (or forward: redo is a rollback to a later version) to `target_id`.
#[tracing::instrument(skip_all, fields(user_id = %user, project_id = %project, target = %target_id))]
pub async fn rollback(
    b: &Builds<'_>,
    user: &UserId,
    project: &ProjectId,
    target_id: VersionId,
) -> Result<Version, ApiError> {
    let target = versions::get(b.db, target_id)
        .await?
        .filter(|t| &t.user_id == user && &t.project_id == project)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "version {target_id} is not a version of project {user}/{project}"
            ))
        })?;
    if target.status != BuildStatus::Deployed {
        return Err(ApiError::WrongStatus {
            message: format!(
                "version {target_id} is {}; only a deployed version can be rolled back to",
                target.status
            ),
            build_id: target_id.to_string(),
        });
    }

    let id = VersionId::new();
    // The slot's value of a rollback in progress: never taken for a stale build claim.
    let hold = SlotHolder::Rollback(id).to_string();
    if let Some(holder) = b.queue.hold(&hold, user, project, HOLD).await? {
        let (what, build_id, rollback) = match SlotHolder::parse(&holder) {
            SlotHolder::Rollback(other) => (
                "another rollback of this project is in progress",
                other.to_string(),
                true,
            ),
            SlotHolder::Build(_) | SlotHolder::Unknown(_) => {
                ("a build of this project is queued or running", holder, false)
            }
        };
        let message = format!("{what}: {build_id}; try again when it is over");
        return Err(if rollback {
            ApiError::RollbackInFlight { message, build_id }
        } else {
            ApiError::BuildInFlight { message, build_id }
        });
    }
    let outcome = flip(b, id, &target).await;
    if let Err(e) = b.queue.release(&hold, user, project).await {
        tracing::warn!(error = %e, "cannot release the rollback's hold; it expires by itself");
    }
    outcome
}

async fn flip(b: &Builds<'_>, id: VersionId, target: &Version) -> Result<Version, ApiError> {
    let version = versions::insert_rollback(b.db, id, target).await?;
    let pointer = LatestPointer {
        latest_version_id: id,
        preview_url: b.urls.version_url(id),
        timestamp: version.finished_at.unwrap_or(version.created_at),
    };
    if let Err(e) = b
        .queue
        .set_latest(&version.user_id, &version.project_id, &pointer)
        .await
    {
        // The pointer did not move: the rollback did not happen.
        versions::delete_rollback(b.db, id).await?;
        return Err(e.into());
    }
    tracing::info!(version = %id, "rolled back");
    Ok(version)
}
