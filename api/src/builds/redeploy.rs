//! Redeploying: `POST /v1/projects/{userId}/{projectId}/redeploy` queues a new build of a
//! version's sources (by default the latest deployed one) with the project's settings and
//! environment as they are now: how a changed value or setting reaches the live preview
//! without new sources. A rollback, by contrast, serves an old output as it was.

use kiln_shared::db::versions::{self, NewVersion};
use kiln_shared::domain::{BuildSettings, BuildStatus, ProjectId, UserId, VersionId};

use super::context::Builds;
use super::enqueue::enqueue;
use super::request::{OnConflict, Queued};
use super::slot::refuse_if_held;
use crate::error::ApiError;

/// Queues the redeploy of `version` (default: the latest deployed) of the project; returns
/// the queued build and the version whose sources it builds. Unless `force`, a redeploy whose
/// settings and environment did not change reuses the deployed output (nothing to rebuild).
#[tracing::instrument(skip(b))]
pub async fn redeploy(
    b: &Builds<'_>,
    user: &UserId,
    project: &ProjectId,
    version: Option<VersionId>,
    force: bool,
) -> Result<(Queued, VersionId), ApiError> {
    let latest = versions::latest_deployed(b.db, user, project).await?;
    let source = match version {
        Some(id) => versions::get(b.db, id)
            .await?
            .filter(|v| &v.user_id == user && &v.project_id == project)
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "version {id} is not a version of project {user}/{project}"
                ))
            })?,
        None => latest.clone().ok_or_else(|| {
            ApiError::NotFound(format!(
                "project {user}/{project} has no deployed version to redeploy"
            ))
        })?,
    };
    if !source.status.is_final() || source.status == BuildStatus::Superseded {
        return Err(ApiError::WrongStatus {
            message: format!(
                "version {} is {}; a redeploy builds the sources of a finished version",
                source.id, source.status
            ),
            build_id: source.id.to_string(),
        });
    }
    refuse_if_held(b, user, project).await?;
    let sources = source.sources(b.artifacts).await?;
    let source_id = source.id;
    let queued = enqueue(
        b,
        NewVersion {
            id: VersionId::new(),
            user_id: user.clone(),
            project_id: project.clone(),
            project_label: source.project_label,
            prompt: None,
            framework: source.framework,
            // The new build follows the live version (what it replaces).
            parent_version_id: latest.map(|l| l.id),
            generate: false,
            source_manifest: sources,
            metadata: None,
            retry_of: None,
            // Today's settings, checks and environment: the project's.
            checks: None,
            settings: BuildSettings::default(),
            request_env: None,
            redeploy_of: Some(source.id),
            force,
            only_if_first: false,
        },
        OnConflict::Reject,
    )
    .await?
    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("an unconditional insert was refused")))?;
    Ok((queued, source_id))
}
