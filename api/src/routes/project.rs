//! One project: `GET`/`PATCH /v1/projects/{userId}/{projectId}` (its settings, environment
//! names, latest version and figures), and its share links of private previews:
//! `POST`/`DELETE /v1/projects/{userId}/{projectId}/share-links`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, TimeZone, Utc};
use kiln_shared::db::projects::{self, share};
use kiln_shared::db::versions;
use kiln_shared::domain::{ProjectId, SettingsScope, UserId, VersionId};
use kiln_shared::secrets::random_key;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::parse::json_body;
use super::projects::project;
use super::serve;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::preview::token::{Share, PARAM};
use crate::problem::Problem;
use crate::state::AppState;
use crate::views::project::ProjectView;
use crate::views::schemas::BuildSettingsSchema;
use crate::views::sorted;

/// The longest a share link lives: 30 days.
pub const MAX_SHARE_SECS: i64 = 30 * 24 * 3600;

pub fn configure(cfg: &mut web::ServiceConfig) {
    serve::<__path_get, _, _>(cfg, "/v1", get);
    serve::<__path_patch, _, _>(cfg, "/v1", patch);
    serve::<__path_share, _, _>(cfg, "/v1", share);
    serve::<__path_revoke, _, _>(cfg, "/v1", revoke);
}

fn missing(user: &UserId, project: &ProjectId) -> ApiError {
    ApiError::NotFound(format!("project {user}/{project} not found"))
}

/// The project as answered, `None` when it has no row.
pub async fn view(
    state: &AppState,
    user: &UserId,
    project: &ProjectId,
) -> Result<Option<ProjectView>, ApiError> {
    let Some(row) = projects::get(&state.db, user, project).await? else {
        return Ok(None);
    };
    let env = projects::env::list(&state.db, user, project).await?;
    let latest = match state.queue.latest(user, project).await? {
        Some(p) => Some(p.latest_version_id),
        None => versions::latest_deployed(&state.db, user, project)
            .await?
            .map(|v| v.id),
    };
    let figures = share::figures(&state.db, user, project).await?;
    Ok(Some(ProjectView::new(row, env, latest, figures, &state.urls)))
}

/// A project
///
/// Its settings, the names of its environment (never a value), its latest version, how many
/// versions it has and its last build.
#[utoipa::path(
    get,
    operation_id = "getProject",
    path = "/v1/projects/{userId}/{projectId}",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path)),
    responses(
        (status = 200, description = "The project", body = ProjectView),
        (status = 404, description = "No such project (or another user's, for a user token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn get(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&path, &caller)?;
    let view = view(&state, &user, &project)
        .await?
        .ok_or_else(|| missing(&user, &project))?;
    Ok(sorted(StatusCode::OK, &view))
}

/// Change a project's settings
///
/// Each member of the body replaces that setting; `null` resets it to Kiln's default; members
/// not in the body stay. Builds queued from now on use the new settings; `previewAccess` and
/// `indexable` apply to every preview of the project at once.
#[utoipa::path(
    patch,
    operation_id = "updateProject",
    path = "/v1/projects/{userId}/{projectId}",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path)),
    request_body = BuildSettingsSchema,
    responses(
        (status = 200, description = "The project as saved", body = ProjectView),
        (status = 404, description = "Another user's project (a user token)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A setting that is unknown or not valid, named (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn patch(
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&path, &caller)?;
    let changes: serde_json::Value = json_body(&body)?;
    projects::update_settings(&state.db, &user, &project, |s| {
        s.patched(&changes, SettingsScope::Project, "")
    })
    .await?
    .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    state.forget_project(&user, &project).await?;
    let view = view(&state, &user, &project)
        .await?
        .ok_or_else(|| missing(&user, &project))?;
    Ok(sorted(StatusCode::OK, &view))
}

/// `POST .../share-links`' body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = NewShareLink)]
struct ShareBody {
    /// Open only this version's preview (default: the project's latest URL, and every version).
    version_id: Option<String>,
    /// How long the link opens the previews: 1 second to 30 days (2592000).
    ttl_secs: Option<i64>,
}

/// A share link just made.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ShareLink)]
struct ShareLink {
    /// The preview URL with its token (`?kiln_share=`): the version's when one was named, else
    /// the project's latest URL.
    url: String,
    expires_at: DateTime<Utc>,
}

/// `DELETE .../share-links`' answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RevokedShareLinks)]
struct Revoked {
    #[schema(value_type = String)]
    user_id: UserId,
    #[schema(value_type = String)]
    project_id: ProjectId,
    revoked_at: DateTime<Utc>,
}

fn unprocessable(msg: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(msg.into())
}

/// Share a private project's previews
///
/// A link that opens the previews of a private project (the version's only, when `versionId`
/// is given) until it expires or the project's links are revoked. Its first use sets an
/// HttpOnly cookie for that preview host and redirects to the same URL without the token.
#[utoipa::path(
    post,
    operation_id = "createShareLink",
    path = "/v1/projects/{userId}/{projectId}/share-links",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path)),
    request_body = ShareBody,
    responses(
        (status = 201, description = "The link and when it expires", body = ShareLink, headers(("Location" = String, description = "The link (the preview URL with its token)"))),
        (status = 404, description = "No such project (or another user's, for a user token)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A ttlSecs outside 1-2592000, or a versionId that is not a version of the project (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn share(
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&path, &caller)?;
    let body: ShareBody = json_body(&body)?;
    let ttl = body.ttl_secs.ok_or_else(|| {
        unprocessable(
            "ttlSecs is required: how long the link opens the previews, 1 to 2592000 seconds (30 days)",
        )
    })?;
    if !(1..=MAX_SHARE_SECS).contains(&ttl) {
        return Err(unprocessable(format!(
            "ttlSecs must be between 1 and {MAX_SHARE_SECS} seconds (30 days), got {ttl}"
        )));
    }
    let version = match body.version_id.as_deref() {
        None => None,
        Some(raw) => {
            let id = VersionId::parse_field("versionId", raw).map_err(|e| unprocessable(e.to_string()))?;
            match versions::get(&state.db, id).await? {
                Some(v) if v.user_id == user && v.project_id == project => Some(id),
                _ => {
                    return Err(unprocessable(format!(
                        "versionId {id} is not a version of {user}/{project}"
                    )))
                }
            }
        }
    };
    let (key, made) = share::share_key(&state.db, &user, &project, &random_key())
        .await?
        .ok_or_else(|| missing(&user, &project))?;
    if made {
        state.forget_project(&user, &project).await?;
    }
    let expires_at = Utc
        .timestamp_opt(Utc::now().timestamp() + ttl, 0)
        .single()
        .ok_or_else(|| unprocessable("ttlSecs is out of range"))?;
    let token = Share {
        user: user.clone(),
        project: project.clone(),
        version,
        expires_at,
    }
    .sign(&key);
    let base = match version {
        Some(id) => state.urls.version_url(id),
        None => state.urls.latest_url(&user, &project),
    };
    let url = format!("{base}?{PARAM}={token}");
    let location = HeaderValue::from_str(&url).map_err(ApiError::internal)?;
    let mut res = sorted(StatusCode::CREATED, &ShareLink { url, expires_at });
    res.headers_mut().insert(header::LOCATION, location);
    Ok(res)
}

/// Revoke every share link of a project
///
/// The project's signing key is replaced: every link made so far (and every cookie one set)
/// stops opening its previews at once.
#[utoipa::path(
    delete,
    operation_id = "revokeShareLinks",
    path = "/v1/projects/{userId}/{projectId}/share-links",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path)),
    responses(
        (status = 200, description = "Every link is revoked", body = Revoked),
        (status = 404, description = "No such project (or another user's, for a user token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn revoke(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&path, &caller)?;
    if !share::rotate_share_key(&state.db, &user, &project, &random_key()).await? {
        return Err(missing(&user, &project));
    }
    state.forget_project(&user, &project).await?;
    Ok(sorted(
        StatusCode::OK,
        &Revoked {
            user_id: user,
            project_id: project,
            revoked_at: Utc::now(),
        },
    ))
}
