//! The JSON shapes the API answers with that several routes share (a build, a page of builds),
//! each with its OpenAPI schema; [`schemas`], the schemas of the types defined elsewhere; and
//! [`sorted`]: an answer written with its keys in order.

pub mod project;
pub mod schemas;

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use kiln_shared::db::versions::{Metrics, Version};
use kiln_shared::domain::{
    BuildSettings, BuildStatus, Checks, Diagnostic, ProjectId, Step, UserId, VersionId,
};
use kiln_shared::preview::PreviewUrls;
use serde::Serialize;
use utoipa::ToSchema;

use self::schemas::{
    BuildSettingsSchema, BuildStatusSchema, ChecksSchema, DiagnosticSchema, MetricsSchema, StepSchema,
};

/// An answer of `status` whose body is `body` with the keys of every object in order, as a
/// `serde_json::Value` writes them (the order the API has always answered with, and the one a
/// replayed answer has).
pub fn sorted<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    let value = serde_json::to_value(body).expect("an answer always serialises");
    HttpResponse::build(status).json(value)
}

/// A build, which is also a version.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Build)]
pub struct BuildView {
    #[schema(value_type = String, example = "01jc0000000000000000000000")]
    pub id: VersionId,
    #[schema(value_type = String)]
    pub user_id: UserId,
    #[schema(value_type = String)]
    pub project_id: ProjectId,
    /// `new` (a first build), `rebuild`, `retry` or `rollback`.
    pub kind: String,
    #[schema(value_type = BuildStatusSchema)]
    pub status: BuildStatus,
    pub prompt: Option<String>,
    #[schema(value_type = Option<String>)]
    pub parent_version_id: Option<VersionId>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The version's permanent URL, once it is deployed.
    pub preview_url: Option<String>,
    /// The project's always-latest URL.
    pub latest_url: String,
    pub error: Option<String>,
    #[schema(value_type = Option<StepSchema>)]
    pub failed_step: Option<Step>,
    /// What was detected from package.json (`vite`, `next`, `sveltekit`…; `static` for a tree
    /// without one), also on a failed build once it got that far.
    pub framework: Option<String>,
    /// The folder the output was published from, relative to the top of the tree (`.`: the
    /// tree as it came; `apps/web/dist` for an app in `apps/web`).
    pub output_dir: Option<String>,
    /// The build settings it was built with (the project's, with the request's one-off
    /// overrides on top). Absent when none is set.
    #[serde(skip_serializing_if = "BuildSettings::is_default")]
    #[schema(required = false, value_type = BuildSettingsSchema)]
    pub settings: BuildSettings,
    pub node_version: Option<String>,
    pub pnpm_version: Option<String>,
    /// What a failed build's tools said (also a deployed build's checks in `warn` mode): at
    /// most 50, errors first. Absent in lists: read the build by id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, value_type = Option<Vec<DiagnosticSchema>>)]
    pub diagnostics: Option<Vec<Diagnostic>>,
    /// How many diagnostics there were in all (more than `diagnostics` holds past 50).
    pub diagnostics_total: Option<i32>,
    /// The checks the build ran (or runs) before its build script.
    #[schema(value_type = ChecksSchema)]
    pub checks: Checks,
    pub attempts: i32,
    /// Attempts whose builder was lost (each was retried from the start on another).
    pub lost_builders: i32,
    /// The builder that ran the latest attempt.
    pub builder_id: Option<String>,
    #[schema(value_type = Option<String>)]
    pub retry_of: Option<VersionId>,
    #[schema(value_type = Option<String>)]
    pub superseded_by: Option<VersionId>,
    pub pinned: bool,
    /// Set when maintenance archived the output (it is still served).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub archived_at: Option<chrono::DateTime<chrono::Utc>>,
    /// A file of this version is gone from the store for good: rebuild it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub needs_rebuild: bool,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    #[schema(value_type = MetricsSchema)]
    pub metrics: Metrics,
    /// The environment the build ran with: names, and whether each was a secret (never a
    /// value). Absent until the build read it, and for builds without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub env: Option<Vec<EnvNameView>>,
    /// The version whose sources this redeploy built.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, value_type = Option<String>)]
    pub redeploy_of: Option<VersionId>,
    /// The deployed version whose output this one serves: it was identical (sources,
    /// settings, environment, toolchain), so nothing was built.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false, value_type = Option<String>)]
    pub reused_from: Option<VersionId>,
}

/// One name of the environment a build ran with.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = BuildEnvName)]
pub struct EnvNameView {
    pub name: String,
    pub secret: bool,
}

/// `GET /v1/builds`: builds newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildPage {
    pub builds: Vec<BuildView>,
    /// The last build's id when the page is full: `before` of the next page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/projects/{userId}/{projectId}/versions`: versions newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionPage {
    /// The last version's id when the page is full: `before` of the next page.
    pub next_cursor: Option<String>,
    pub versions: Vec<BuildView>,
}

/// The id of the last row when the page is full (`limit` rows).
pub fn next_cursor(rows: &[Version], limit: i64) -> Option<String> {
    (rows.len() as i64 == limit)
        .then(|| rows.last().map(|v| v.id.to_string()))
        .flatten()
}

/// Rows as views.
pub fn views(rows: Vec<Version>, urls: &PreviewUrls) -> Vec<BuildView> {
    rows.into_iter().map(|v| BuildView::new(v, urls)).collect()
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
            output_dir: v.output_dir,
            settings: v.settings,
            diagnostics: v.diagnostics,
            diagnostics_total: v.diagnostics_total,
            checks: v.checks,
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
            env: v.env.filter(|e| !e.is_empty()).map(|entries| {
                entries
                    .into_iter()
                    .map(|e| EnvNameView {
                        name: e.name,
                        secret: e.secret,
                    })
                    .collect()
            }),
            redeploy_of: v.redeploy_of,
            reused_from: v.reused_from,
        }
    }
}
