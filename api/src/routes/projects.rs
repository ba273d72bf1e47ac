//! `GET /v1/projects/{userId}/{projectId}/versions` and `.../latest`.

use actix_web::{web, HttpRequest, HttpResponse};
use kiln_shared::db::versions::{self, ListFilter};
use kiln_shared::domain::{ProjectId, UserId, VersionId};
use serde::Deserialize;

use super::builds::page;
use super::parse::{limit, query};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects/{user}/{project}/versions", web::get().to(versions))
        .route("/projects/{user}/{project}/latest", web::get().to(latest));
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionsQuery {
    limit: Option<i64>,
    before: Option<String>,
}

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
    Ok(HttpResponse::Ok().json(page("versions", rows, filter.limit, &state)))
}

/// The KV pointer first; Postgres when the KV has nothing (and the KV is repaired from it).
async fn latest(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&path, &caller)?;
    let latest_url = state.urls.latest_url(&user, &project);
    if let Some(p) = state.queue.latest(&user, &project).await? {
        return Ok(HttpResponse::Ok().json(serde_json::json!({
            "latestVersionId": p.latest_version_id,
            "previewUrl": p.preview_url,
            "latestUrl": latest_url,
            "timestamp": p.timestamp,
            "source": "kv",
        })));
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
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "latestVersionId": pointer.latest_version_id,
        "previewUrl": pointer.preview_url,
        "latestUrl": latest_url,
        "timestamp": pointer.timestamp,
        "source": "postgres",
    })))
}
