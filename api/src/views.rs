//! The JSON shapes the API answers with.

use chrono::{DateTime, Utc};
use kiln_shared::db::versions::{Metrics, Version};
use kiln_shared::domain::{BuildStatus, ProjectId, Step, UserId, VersionId};
use kiln_shared::preview::PreviewUrls;
use serde::Serialize;

/// A build, which is also a version.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildView {
    pub id: VersionId,
    pub user_id: UserId,
    pub project_id: ProjectId,
    pub kind: String,
    pub status: BuildStatus,
    pub prompt: Option<String>,
    pub parent_version_id: Option<VersionId>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The version's permanent URL, once it is deployed.
    pub preview_url: Option<String>,
    /// The project's always-latest URL.
    pub latest_url: String,
    pub error: Option<String>,
    pub failed_step: Option<Step>,
    pub framework: Option<String>,
    pub node_version: Option<String>,
    pub pnpm_version: Option<String>,
    pub attempts: i32,
    /// Attempts whose builder was lost (each was retried from the start on another).
    pub lost_builders: i32,
    /// The builder that ran the latest attempt.
    pub builder_id: Option<String>,
    pub retry_of: Option<VersionId>,
    pub superseded_by: Option<VersionId>,
    pub pinned: bool,
    /// Set when maintenance archived the output (it is still served).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<chrono::DateTime<chrono::Utc>>,
    /// A file of this version is gone from the store for good: rebuild it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub needs_rebuild: bool,
    pub metadata: Option<serde_json::Value>,
    pub metrics: Metrics,
}

impl BuildView {
    pub fn new(v: Version, urls: &PreviewUrls) -> Self {
        Self {
            preview_url: (v.status == BuildStatus::Deployed).then(|| urls.version_url(v.id)),
            latest_url: urls.latest_url(&v.user_id, &v.project_id),
            id: v.id,
            user_id: v.user_id,
            project_id: v.project_id,
            kind: v.kind,
            status: v.status,
            prompt: v.prompt,
            parent_version_id: v.parent_version_id,
            created_at: v.created_at,
            started_at: v.started_at,
            finished_at: v.finished_at,
            error: v.error,
            failed_step: v.failed_step,
            framework: v.framework,
            node_version: v.node_version,
            pnpm_version: v.pnpm_version,
            attempts: v.attempts,
            lost_builders: v.lost,
            builder_id: v.builder_id,
            retry_of: v.retry_of,
            superseded_by: v.superseded_by,
            pinned: v.pinned,
            archived_at: v.archived_at,
            needs_rebuild: v.needs_rebuild,
            metadata: v.metadata,
            metrics: v.metrics,
        }
    }
}
