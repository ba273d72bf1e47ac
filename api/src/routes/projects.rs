//! `GET /v1/projects/{userId}/{projectId}/versions` and `.../latest`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use kiln_shared::db::versions::{self, ListFilter};
use kiln_shared::domain::{ProjectId, UserId, VersionId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::parse::{limit, query};
use super::serve;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::problem::Problem;
use crate::state::AppState;
use crate::views::{next_cursor, sorted, views, VersionPage};

pub fn configure(cfg: &mut web::ServiceConfig) {
    serve::<__path_versions, _, _>(cfg, "/v1", versions);
    serve::<__path_latest, _, _>(cfg, "/v1", latest);
}

/// `GET .../latest`'s answer: the project's latest pointer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Latest {
    /// The project's always-latest URL.
    latest_url: String,
    #[schema(value_type = String)]
    latest_version_id: VersionId,
    /// The latest version's permanent URL.
    preview_url: String,
    /// Where the pointer was read: `kv`, or `postgres` (when the KV had none).
    #[schema(pattern = "^(kv|postgres)$")]
    source: &'static str,
    timestamp: DateTime<Utc>,
}

/// The project in the path, when the caller may see it (a user token: its own user's only;
/// another user's project is a 404, whether it exists or not).
pub(super) fn project(path: &(String, String), caller: &Caller) -> Result<(UserId, ProjectId), ApiError> {
    let bad = |e: kiln_shared::domain::IdError| ApiError::BadRequest(e.to_string());
    let (user, project) = (
        UserId::parse(&path.0).map_err(bad)?,
        ProjectId::parse(&path.1).map_err(bad)?,
    );
    caller.check(&user, || {
        ApiError::NotFound(format!("project {user}/{project} not found"))
    })?;
    Ok((user, project))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct VersionsQuery {
    /// 1-100, default 100.
    limit: Option<i64>,
    /// A cursor: `nextCursor` of the page before.
    before: Option<String>,
}

/// A project's versions
///
/// Versions newest first.
#[utoipa::path(
    get,
    operation_id = "listVersions",
    path = "/v1/projects/{userId}/{projectId}/versions",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path), VersionsQuery),
    responses(
        (status = 200, description = "A page of versions", body = VersionPage),
        (status = 404, description = "Another user's project (a user token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn versions(
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&path, &caller)?;
    let q: VersionsQuery = query(&req)?;
    let filter = ListFilter {
        user_id: Some(user),
        project_id: Some(project),
        before: q
            .before
            .as_deref()
            .map(|b| VersionId::parse_field("before", b))
            .transpose()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        limit: limit(q.limit.or(Some(100)))?,
        ..ListFilter::default()
    };
    let rows = versions::list(&state.db, &filter).await?;
    let page = VersionPage {
        next_cursor: next_cursor(&rows, filter.limit),
        versions: views(rows, &state.urls),
    };
    Ok(sorted(StatusCode::OK, &page))
}

/// A project's latest version
///
/// The KV pointer first; Postgres when the KV has nothing (and the KV is repaired from it).
#[utoipa::path(
    get,
    operation_id = "getLatestVersion",
    path = "/v1/projects/{userId}/{projectId}/latest",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path)),
    responses(
        (status = 200, description = "The latest pointer", body = Latest),
        (status = 404, description = "No deployed version (or another user's project, for a user token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn latest(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&path, &caller)?;
    let latest_url = state.urls.latest_url(&user, &project);
    if let Some(p) = state.queue.latest(&user, &project).await? {
        return Ok(sorted(
            StatusCode::OK,
            &Latest {
                latest_url,
                latest_version_id: p.latest_version_id,
                preview_url: p.preview_url,
                source: "kv",
                timestamp: p.timestamp,
            },
        ));
    }
    let v = versions::latest_deployed(&state.db, &user, &project)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("project {user}/{project} has no deployed version")))?;
    let pointer = kiln_shared::redis::LatestPointer {
        latest_version_id: v.id,
        preview_url: state.urls.version_url(v.id),
        timestamp: v.finished_at.unwrap_or(v.created_at),
    };
    if let Err(e) = state.queue.set_latest(&user, &project, &pointer).await {
        tracing::warn!(error = %e, "cannot repair the latest pointer");
    }
    Ok(sorted(
        StatusCode::OK,
        &Latest {
            latest_url,
            latest_version_id: pointer.latest_version_id,
            preview_url: pointer.preview_url,
            source: "postgres",
            timestamp: pointer.timestamp,
        },
    ))
}
