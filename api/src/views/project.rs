//! A project as the API answers it ([`ProjectView`]): its settings, the names of its
//! environment (never a value), its latest version, how many versions it has and its last
//! build. `GET`/`PATCH /v1/projects/{userId}/{projectId}` answer it; a listing can reuse it.

use chrono::{DateTime, Utc};
use kiln_shared::db::projects::env::StoredVar;
use kiln_shared::db::projects::share::LastBuild;
use kiln_shared::db::projects::Project;
use kiln_shared::domain::{BuildSettings, BuildStatus, ProjectId, UserId, VersionId};
use kiln_shared::preview::PreviewUrls;
use serde::Serialize;
use utoipa::ToSchema;

use super::schemas::{BuildSettingsSchema, BuildStatusSchema};

/// A project.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Project)]
pub struct ProjectView {
    #[schema(value_type = String)]
    pub user_id: UserId,
    #[schema(value_type = String)]
    pub project_id: ProjectId,
    /// Its build settings (an absent member takes Kiln's default).
    #[schema(value_type = BuildSettingsSchema)]
    pub settings: BuildSettings,
    /// Its environment's names, by name (values are read with the env routes; a secret's never).
    pub env: Vec<EnvNameView>,
    /// The latest deployed version, if any.
    #[schema(value_type = Option<String>)]
    pub latest_version_id: Option<VersionId>,
    /// The project's always-latest URL.
    pub latest_url: String,
    /// How many versions (builds) it has.
    pub versions: i64,
    pub last_build: Option<LastBuildView>,
    pub created_at: DateTime<Utc>,
    /// The latest build request, setting or environment change.
    pub active_at: DateTime<Utc>,
}

/// One name of a project's environment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ProjectEnvName)]
pub struct EnvNameView {
    pub name: String,
    pub secret: bool,
    pub updated_at: DateTime<Utc>,
}

/// A project's newest build.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ProjectLastBuild)]
pub struct LastBuildView {
    #[schema(value_type = String)]
    pub id: VersionId,
    #[schema(value_type = BuildStatusSchema)]
    pub status: BuildStatus,
    pub created_at: DateTime<Utc>,
}

impl ProjectView {
    pub fn new(
        project: Project,
        env: Vec<StoredVar>,
        latest_version_id: Option<VersionId>,
        (versions, last_build): (i64, Option<LastBuild>),
        urls: &PreviewUrls,
    ) -> Self {
        Self {
            latest_url: urls.latest_url(&project.user_id, &project.project_id),
            env: env
                .into_iter()
                .map(|v| EnvNameView {
                    secret: v.is_secret(),
                    name: v.name,
                    updated_at: v.updated_at,
                })
                .collect(),
            latest_version_id,
            versions,
            last_build: last_build.map(|b| LastBuildView {
                id: b.id,
                status: b.status,
                created_at: b.created_at,
            }),
            user_id: project.user_id,
            project_id: project.project_id,
            settings: project.settings,
            created_at: project.created_at,
            active_at: project.active_at,
        }
    }
}
