//! `POST /v1/builds`, `GET /v1/builds/{id}`, `GET /v1/builds`, and the seed aliases.

use actix_web::http::StatusCode;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use kiln_shared::db::events;
use kiln_shared::db::versions::{self, ListFilter};
use kiln_shared::domain::{BuildStatus, ProjectId, UserId, VersionId};
use kiln_shared::redis::{Claim, IdempotencyRecord, SignatureRecord};
use kiln_shared::store::sha256_hex;
use serde::Deserialize;

use super::{json_body, limit, query_str};
use crate::admission::{self, BuildRequest, BuildRequestBody};
use crate::auth::{Caller, UnrecordedSignature};
use crate::error::ApiError;
use crate::queue_estimate::{self, QueueEstimate};
use crate::state::AppState;
use crate::views::BuildView;

pub(crate) const IDEMPOTENCY_HEADER: &str = "idempotency-key";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/builds", web::post().to(create))
        .route("/builds", web::get().to(list))
        .route("/builds/{id}", web::get().to(get))
        .route("/builds/{id}/cancel", web::post().to(cancel))
        .route("/builds/{id}/retry", web::post().to(retry));
}

/// `POST /v1/builds/{id}/cancel`: the build, now `cancelled` (idempotent).
async fn cancel(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = visible_build(&state, &caller, &path).await?;
    let cancelled = crate::lifecycle::cancel(&state, id).await?;
    Ok(HttpResponse::Ok().json(BuildView::new(cancelled, &state.urls)))
}

/// `POST /v1/builds/{id}/retry`: a new build with the failed or cancelled one's sources.
async fn retry(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = visible_build(&state, &caller, &path).await?;
    let queued = crate::lifecycle::retry(&state, id).await?;
    let mut response = serde_json::to_value(&queued).expect("a response always serialises");
    response["retryOf"] = id.to_string().into();
    Ok(accepted(response))
}

/// How a request reached admission: the Kiln API or one of the seed's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Kiln,
    SeedNewProject,
    SeedRebuild,
}

async fn create(
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    submit(&caller, &req, &body, &state, Flavour::Kiln).await
}

/// `POST /build-preview-for-new-project`
pub async fn seed_new_project(
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    submit(&caller, &req, &body, &state, Flavour::SeedNewProject).await
}

/// `POST /rebuild-preview`
pub async fn seed_rebuild(
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    submit(&caller, &req, &body, &state, Flavour::SeedRebuild).await
}

/// Admission with idempotency: the same key and body replays the first answer; the same key with
/// another body is a 422.
async fn submit(
    caller: &Caller,
    req: &HttpRequest,
    body: &web::Bytes,
    state: &AppState,
    flavour: Flavour,
) -> Result<HttpResponse, ApiError> {
    let key = match req.headers().get(IDEMPOTENCY_HEADER) {
        None => None,
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    ApiError::BadRequest("Idempotency-Key must be 1-255 visible characters".into())
                })?;
            // A user token's keys are its user's own: they never replay another caller's answer.
            Some(match caller.user() {
                Some(user) => format!("user:{user}:{k}"),
                None => k.to_owned(),
            })
        }
    };
    let body_hash = sha256_hex(body);
    let signature = req.extensions().get::<UnrecordedSignature>().map(|s| s.0.clone());
    let Some(key) = key else {
        return admit(caller, body, state, flavour, signature).await.map(accepted);
    };
    match state.idempotency.claim(&key, &body_hash).await? {
        Claim::Fresh => {}
        Claim::Replay(record) => {
            let status = StatusCode::from_u16(record.status).unwrap_or(StatusCode::ACCEPTED);
            return Ok(HttpResponse::build(status)
                .insert_header(("Idempotent-Replayed", "true"))
                .json(record.response));
        }
        Claim::InProgress => {
            return Err(ApiError::InProgress(
                "a request with this Idempotency-Key is still being processed; retry shortly".into(),
            ))
        }
        Claim::Mismatch => {
            return Err(ApiError::Unprocessable(
                "this Idempotency-Key was already used with a different request body".into(),
            ))
        }
    }
    // The reservation is renewed while admission runs, so it outlives a slow request but not
    // a dead one.
    let renew = async {
        loop {
            tokio::time::sleep(kiln_shared::redis::IDEMPOTENCY_RENEW_EVERY).await;
            if let Err(e) = state.idempotency.renew(&key, &body_hash).await {
                tracing::warn!(error = %e, "cannot renew the Idempotency-Key's reservation");
            }
        }
    };
    let admitted = tokio::select! {
        admitted = admit(caller, body, state, flavour, signature) => admitted,
        never = renew => never,
    };
    match admitted {
        Ok(response) => {
            let record = IdempotencyRecord {
                body_hash,
                status: StatusCode::ACCEPTED.as_u16(),
                response: response.clone(),
            };
            if let Err(e) = state.idempotency.complete(&key, &record).await {
                tracing::warn!(error = %e, "cannot store the idempotency record");
            }
            Ok(accepted(response))
        }
        Err(e) => {
            // Refusals are not remembered: a corrected retry with the same key is evaluated.
            if let Err(e) = state.idempotency.release(&key).await {
                tracing::warn!(error = %e, "cannot release the idempotency key");
            }
            Err(e)
        }
    }
}

fn accepted(response: serde_json::Value) -> HttpResponse {
    let location = response["statusUrl"].as_str().unwrap_or_default().to_owned();
    HttpResponse::Accepted()
        .insert_header(("Location", location))
        .json(response)
}

/// Parses, checks and admits a request; the JSON answer of a 202.
async fn admit(
    caller: &Caller,
    body: &web::Bytes,
    state: &AppState,
    flavour: Flavour,
    signature: Option<SignatureRecord>,
) -> Result<serde_json::Value, ApiError> {
    let parsed: BuildRequestBody = json_body(body)?;
    let request = BuildRequest::parse(parsed, state.settings.file_limits())?;
    caller.check(&request.user, || {
        ApiError::NotFound(format!("user {} not found", request.user))
    })?;
    if flavour == Flavour::SeedRebuild
        && request.base.is_none()
        && versions::latest_deployed(&state.db, &request.user, &request.project)
            .await?
            .is_none()
    {
        return Err(ApiError::Unprocessable(format!(
            "project {}/{} has no deployed version to rebuild; use /build-preview-for-new-project",
            request.user, request.project
        )));
    }
    let queued = Box::pin(admission::admit(state, request, signature)).await?;
    let mut response = serde_json::to_value(&queued).expect("a response always serialises");
    if flavour != Flavour::Kiln {
        // The seed's answer had `success` and `versionId`; a build id is a version id.
        response["success"] = true.into();
        response["versionId"] = queued.build_id.to_string().into();
    }
    Ok(response)
}

/// Parses a build id from the path.
pub fn path_id(raw: &str) -> Result<VersionId, ApiError> {
    VersionId::parse_field("build id", raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// The build id in the path, when the build exists and the caller may see it; else the same
/// 404 either way.
pub async fn visible_build(state: &AppState, caller: &Caller, raw: &str) -> Result<VersionId, ApiError> {
    let id = path_id(raw)?;
    let missing = || ApiError::NotFound(format!("build {id} not found"));
    let user = versions::user_of(&state.db, id).await?.ok_or_else(missing)?;
    caller.check(&user, missing)?;
    Ok(id)
}

async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&path)?;
    let (version, latest) = futures::try_join!(versions::get(&state.db, id), events::latest(&state.db, id))?;
    let missing = || ApiError::NotFound(format!("build {id} not found"));
    let version = version.ok_or_else(missing)?;
    caller.check(&version.user_id, missing)?;
    let progress = match (&latest, version.status.is_final()) {
        (_, true) => 100,
        (Some(e), false) => e.progress,
        (None, false) => 0,
    };
    let queue = match version.status {
        BuildStatus::Queued => match queue_estimate::for_build(&state, id).await {
            Ok(estimate) => Some(estimate),
            Err(e) => {
                // The build itself is still worth answering with.
                tracing::warn!(error = %e, "cannot estimate the build's start");
                None
            }
        },
        _ => None,
    };
    Ok(HttpResponse::Ok().json(BuildDetail {
        build: BuildView::new(version, &state.urls),
        progress,
        latest_event: latest,
        queue,
    }))
}

/// `GET /v1/builds/{id}`: the build, how far along it is and its newest event.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildDetail {
    #[serde(flatten)]
    build: BuildView,
    progress: i16,
    latest_event: Option<events::BuildEvent>,
    /// While queued: `queuePosition`, `estimatedStartAt` and what they were computed from.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    queue: Option<QueueEstimate>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    user_id: Option<String>,
    project_id: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
    before: Option<String>,
}

fn bad(e: impl ToString) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

async fn list(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let filter = list_filter(req.query_string(), &caller)?;
    let rows = versions::list(&state.db, &filter).await?;
    Ok(HttpResponse::Ok().json(page("builds", rows, filter.limit, &state)))
}

/// `GET /v1/builds`' query, as the filter of the caller's list.
pub(crate) fn list_filter(raw: &str, caller: &Caller) -> Result<ListFilter, ApiError> {
    let q: ListQuery = query_str(raw)?;
    let user = q.user_id.as_deref().map(UserId::parse).transpose().map_err(bad)?;
    if let Some(user) = &user {
        caller.check(user, || ApiError::NotFound(format!("user {user} not found")))?;
    }
    let filter = ListFilter {
        // A user token lists its own user's builds only.
        user_id: user.or_else(|| caller.user().cloned()),
        project_id: q
            .project_id
            .as_deref()
            .map(ProjectId::parse)
            .transpose()
            .map_err(bad)?,
        status: q
            .status
            .as_deref()
            .map(str::parse::<BuildStatus>)
            .transpose()
            .map_err(bad)?,
        before: q
            .before
            .as_deref()
            .map(|b| VersionId::parse_field("before", b))
            .transpose()
            .map_err(bad)?,
        limit: limit(q.limit)?,
    };
    Ok(filter)
}

/// `{"<name>": [...], "nextCursor": <id of the last row when the page is full>}`
pub fn page(name: &str, rows: Vec<versions::Version>, limit: i64, state: &AppState) -> serde_json::Value {
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|v| v.id.to_string()))
        .flatten();
    let views: Vec<BuildView> = rows.into_iter().map(|v| BuildView::new(v, &state.urls)).collect();
    serde_json::json!({ name: views, "nextCursor": next })
}
