//! Projects listed and removed: `GET /v1/projects` (newest activity first, with a cursor),
//! `DELETE /v1/projects/{userId}/{projectId}`, and the deletion of every project of a user,
//! `DELETE /v1/users/{userId}` with its status at `GET /v1/deletions/{id}`. Deleting is for the
//! operator and the back end only: for a user token those routes do not exist (404).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use kiln_shared::db::deletions::{self, Deletion};
use kiln_shared::db::projects::delete as project_rows;
use kiln_shared::db::projects::list::{self, After, Listed};
use kiln_shared::domain::{ProjectId, UserId, VersionId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::parse::{limit, query};
use super::serve;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::lifecycle::{self, Deleted};
use crate::problem::Problem;
use crate::state::AppState;
use crate::views::sorted;

pub fn configure(cfg: &mut web::ServiceConfig) {
    serve::<__path_list_projects, _, _>(cfg, "/v1", list_projects);
    serve::<__path_delete_project, _, _>(cfg, "/v1", delete_project);
    serve::<__path_delete_user, _, _>(cfg, "/v1", delete_user);
    serve::<__path_get_deletion, _, _>(cfg, "/v1", get_deletion);
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this user's projects (a user token: its own user's, whether given or not).
    user_id: Option<String>,
    /// 1-100, default 50.
    limit: Option<i64>,
    /// A cursor: `nextCursor` of the page before.
    before: Option<String>,
}

/// A project's last build.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastBuildView {
    #[schema(value_type = String)]
    id: VersionId,
    #[schema(value_type = crate::views::schemas::BuildStatusSchema)]
    status: kiln_shared::domain::BuildStatus,
    created_at: DateTime<Utc>,
}

/// A project as listed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSummary {
    #[schema(value_type = String)]
    user_id: UserId,
    #[schema(value_type = String)]
    project_id: ProjectId,
    /// The latest deployed version (none yet: null).
    #[schema(value_type = Option<String>)]
    latest_version_id: Option<VersionId>,
    /// The project's always-latest URL, once a version is deployed.
    latest_url: Option<String>,
    /// How many versions it has.
    versions: i64,
    /// Its newest build, whatever its status.
    last_build: Option<LastBuildView>,
}

/// A page of projects.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectPage {
    projects: Vec<ProjectSummary>,
    /// Pass as `before` for the next page; null on the last.
    next_cursor: Option<String>,
}

fn parse_cursor(raw: &str) -> Result<After, ApiError> {
    After::from_cursor(raw)
        .ok_or_else(|| ApiError::BadRequest(format!("before: {raw:?} is not a cursor this API gave")))
}

fn summary(p: Listed, state: &AppState) -> ProjectSummary {
    ProjectSummary {
        latest_url: p
            .latest_version_id
            .map(|_| state.urls.latest_url(&p.user_id, &p.project_id)),
        latest_version_id: p.latest_version_id,
        versions: p.versions,
        last_build: p.last_build.map(|b| LastBuildView {
            id: b.id,
            status: b.status,
            created_at: b.created_at,
        }),
        user_id: p.user_id,
        project_id: p.project_id,
    }
}

/// Projects
///
/// Newest activity first (the latest build request, setting or environment change), then by
/// user and project. A user token sees its own user's projects only (another `userId` is a 404).
#[utoipa::path(
    get,
    operation_id = "listProjects",
    path = "/v1/projects",
    tag = "projects",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of projects", body = ProjectPage),
        (status = 400, description = "A bad userId, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Another user (a user token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn list_projects(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = query(&req)?;
    let user = q
        .user_id
        .as_deref()
        .map(UserId::parse)
        .transpose()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if let Some(user) = &user {
        caller.check(user, || ApiError::NotFound(format!("user {user} not found")))?;
    }
    let user = user.or_else(|| caller.user().cloned());
    let limit = limit(q.limit.or(Some(50)))?;
    let after = q.before.as_deref().map(parse_cursor).transpose()?;
    let rows = list::page(&state.db, user.as_ref(), after.as_ref(), limit).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|p| p.after().cursor()))
        .flatten();
    let page = ProjectPage {
        projects: rows.into_iter().map(|p| summary(p, &state)).collect(),
        next_cursor,
    };
    Ok(sorted(StatusCode::OK, &page))
}

/// A project's deletion, as answered.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectDeleted {
    /// `deleted`: the rows, logs, manifests and Redis keys are gone; the blobs no other
    /// version uses are collected by the next maintenance run.
    #[schema(pattern = "^deleted$")]
    status: &'static str,
    deleted: Deleted,
}

/// Delete a project
///
/// Its queued or running build is cancelled; its versions, build events, webhook deliveries,
/// environment, settings, logs, manifests, latest pointer and label are deleted, and its
/// preview URLs answer 404 at once. Blobs no other version references are collected by the
/// next `kiln-ops maintain`. Operator and back end only.
#[utoipa::path(
    delete,
    operation_id = "deleteProject",
    path = "/v1/projects/{userId}/{projectId}",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path)),
    responses(
        (status = 202, description = "Deleted", body = ProjectDeleted),
        (status = 400, description = "A bad userId or projectId", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such project (or already deleted), or a user token", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn delete_project(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    let (user, project) = super::projects::project(&path, &caller)?;
    let deleted = lifecycle::delete_project(&state.builds(), &user, &project)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("project {user}/{project} not found")))?;
    // Every instance drops its copy of the gate when the change's message reaches it; this one
    // before it answers.
    state.near_gates.forget(&user, &project);
    Ok(sorted(
        StatusCode::ACCEPTED,
        &ProjectDeleted {
            status: "deleted",
            deleted,
        },
    ))
}

/// A user deletion's status.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletionView {
    deletion_id: String,
    /// Where to follow it.
    status_url: String,
    #[schema(value_type = String)]
    user_id: UserId,
    /// `queued`, `running` or `done`.
    #[schema(pattern = "^(queued|running|done)$")]
    status: String,
    projects_total: i32,
    projects_deleted: i32,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
}

impl From<Deletion> for DeletionView {
    fn from(d: Deletion) -> Self {
        Self {
            status_url: format!("/v1/deletions/{}", d.id),
            deletion_id: d.id,
            user_id: d.user_id,
            status: d.status,
            projects_total: d.projects_total,
            projects_deleted: d.projects_deleted,
            created_at: d.created_at,
            started_at: d.started_at,
            finished_at: d.finished_at,
        }
    }
}

/// Delete a user's data
///
/// Every project of the user, as `DELETE /v1/projects/{userId}/{projectId}` does, in the
/// background: follow `statusUrl`. Resumable: if the API instance doing it dies, another (or
/// the same after a restart) finishes it. A deletion already in progress is answered again;
/// a user with nothing left is a 404. Builds the user requests meanwhile are deleted too.
/// Operator and back end only.
#[utoipa::path(
    delete,
    operation_id = "deleteUser",
    path = "/v1/users/{userId}",
    tag = "projects",
    params(("userId" = String, Path)),
    responses(
        (status = 202, description = "Recorded (or already in progress)", body = DeletionView),
        (status = 400, description = "A bad userId", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The user has no project left, or a user token", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn delete_user(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    let user = UserId::parse(&path).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let deletion = match deletions::active(&state.db, &user).await? {
        Some(d) => d,
        None if project_rows::of_user(&state.db, &user).await?.is_empty() => {
            return Err(ApiError::NotFound(format!("user {user} has no projects")));
        }
        None => deletions::start(&state.db, &user).await?.0,
    };
    state.deleter.wake();
    Ok(sorted(StatusCode::ACCEPTED, &DeletionView::from(deletion)))
}

/// A user deletion's status
#[utoipa::path(
    get,
    operation_id = "getDeletion",
    path = "/v1/deletions/{id}",
    tag = "projects",
    params(("id" = String, Path, description = "The deletion's id (`del_...`)")),
    responses(
        (status = 200, description = "Its status", body = DeletionView),
        (status = 400, description = "Not a deletion id", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such deletion, or a user token", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn get_deletion(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    if !deletions::is_id(&path) {
        return Err(ApiError::BadRequest(format!(
            "deletion id must be del_ and 26 characters of 0-9a-z, got {:?}",
            path.as_str()
        )));
    }
    let d = deletions::get(&state.db, &path)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("deletion {} not found", path.as_str())))?;
    Ok(sorted(StatusCode::OK, &DeletionView::from(d)))
}
