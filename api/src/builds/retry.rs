//! Repeating a build: `POST /v1/builds/{id}/retry` queues a new build with the sources of a
//! failed or cancelled one.

use kiln_shared::db::versions::{self, NewVersion};
use kiln_shared::domain::{BuildStatus, VersionId};

use super::context::Builds;
use super::enqueue::enqueue;
use super::request::{OnConflict, Queued};
use super::slot::refuse_if_held;
use crate::error::ApiError;

/// Queues a new build with the sources of a failed or cancelled one (a new id; `retryOf`
/// names the old build, and it starts from the same base).
#[tracing::instrument(skip(b))]
pub async fn retry(b: &Builds<'_>, id: VersionId) -> Result<Queued, ApiError> {
    let old = versions::get(b.db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("build {id} not found")))?;
    if !matches!(old.status, BuildStatus::Failed | BuildStatus::Cancelled) {
        return Err(ApiError::WrongStatus {
            message: format!(
                "only a failed or cancelled build can be retried; build {id} is {}",
                old.status
            ),
            build_id: id.to_string(),
        });
    }
    refuse_if_held(b, &old.user_id, &old.project_id).await?;
    let sources = old.sources(b.artifacts).await?;
    enqueue(
        b,
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
            checks: Some(old.checks),
            settings: old.settings,
            request_env: old.request_env,
            redeploy_of: old.redeploy_of,
            force: old.force,
            only_if_first: false,
        },
        OnConflict::Reject,
    )
    .await?
    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("an unconditional insert was refused")))
}
