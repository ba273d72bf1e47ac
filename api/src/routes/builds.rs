//! `POST /v1/builds`, `GET /v1/builds/{id}`, `GET /v1/builds`, and the seed aliases.

use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{guard, web, HttpMessage, HttpRequest, HttpResponse};
use kiln_shared::db::events;
use kiln_shared::db::versions::{self, ListFilter};
use kiln_shared::domain::{BuildStatus, ProjectId, UserId, VersionId};
use kiln_shared::redis::SignatureRecord;
use kiln_shared::store::sha256_hex;
use serde::{Deserialize, Serialize};

use utoipa::{IntoParams, ToSchema};

use super::parse::{json_body, limit, query_str};
use super::serve;
use crate::auth::authenticate_admission;
use crate::builds::estimate::{self, QueueEstimate};
use crate::builds::{self, BuildRequest, BuildRequestBody, Queued};
use crate::caller::{Caller, UnrecordedSignature};
use crate::error::ApiError;
use crate::idempotency::{self, Once};
use crate::problem::Problem;
use crate::state::AppState;
use crate::views::schemas::{BuildEventSchema, BuildRequestSchema, QueueEstimateSchema, QueuedSchema};
use crate::views::{next_cursor, sorted, views, BuildPage, BuildView};

/// The routes under `/v1` but admission's (see [`admission`]).
pub fn configure(cfg: &mut web::ServiceConfig) {
    serve::<__path_list, _, _>(cfg, "/v1", list);
    serve::<__path_get, _, _>(cfg, "/v1", get);
    serve::<__path_cancel, _, _>(cfg, "/v1", cancel);
    serve::<__path_retry, _, _>(cfg, "/v1", retry);
}

/// The routes that admit builds: `POST /v1/builds` and the seed's aliases. They authenticate
/// with [`authenticate_admission`]: admission records a signature's use itself, in its first
/// Redis round trip. Registered beside the `/v1` scope, not in it (its middleware would record
/// the signature first); `/v1/builds` takes only its `POST`, so any other method goes on to the
/// scope.
pub fn admission(cfg: &mut web::ServiceConfig) {
    use utoipa::Path;
    #[allow(deprecated)]
    cfg.service(
        web::resource(__path_create::path())
            .guard(guard::Post())
            .wrap(from_fn(authenticate_admission))
            .route(web::post().to(create)),
    )
    .service(
        web::resource(__path_seed_new_project::path())
            .guard(guard::Post())
            .wrap(from_fn(authenticate_admission))
            .route(web::post().to(seed_new_project)),
    )
    .service(
        web::resource(__path_seed_rebuild::path())
            .guard(guard::Post())
            .wrap(from_fn(authenticate_admission))
            .route(web::post().to(seed_rebuild)),
    );
}

/// Cancel a queued or running build
///
/// It never starts, or its processes are stopped (SIGTERM, then SIGKILL); its project's slot is
/// free at once. Idempotent: the answer is the build, now `cancelled`.
#[utoipa::path(
    post,
    operation_id = "cancelBuild",
    path = "/v1/builds/{id}/cancel",
    tag = "builds",
    params(("id" = String, Path, description = "The build's id")),
    responses(
        (status = 200, description = "The build, cancelled", body = BuildView),
        (status = 404, description = "Unknown build", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The build already ended (`wrong_status`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn cancel(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = visible_build(&state, &caller, &path).await?;
    let cancelled = builds::cancel(&state.builds(), id).await?;
    Ok(HttpResponse::Ok().json(BuildView::new(cancelled, &state.urls)))
}

/// Retry a failed or cancelled build
///
/// Queues a new build with the sources and base of a failed or cancelled build (`retryOf` names
/// it).
#[utoipa::path(
    post,
    operation_id = "retryBuild",
    path = "/v1/builds/{id}/retry",
    tag = "builds",
    params(("id" = String, Path, description = "The failed or cancelled build's id")),
    responses(
        (status = 202, description = "Queued", body = Accepted, headers(("Location" = String, description = "The new build's URL (`statusUrl`)"))),
        (status = 404, description = "Unknown build", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The build is not failed or cancelled (`wrong_status`), or another build of the project is in flight (`build_in_flight`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A quota is used up (`quota_exceeded`), or the per-IP rate limit (`rate_limited`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn retry(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = visible_build(&state, &caller, &path).await?;
    let queued = builds::retry(&state.builds(), id).await?;
    Ok(accepted(&Accepted {
        queued,
        seed: None,
        retry_of: Some(id),
        redeploy_of: None,
    }))
}

/// How a request reached admission: the Kiln API or one of the seed's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Kiln,
    SeedNewProject,
    SeedRebuild,
}

/// The 202 of a build request: the queued build (its `statusUrl` is also the `Location`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Accepted {
    #[serde(flatten)]
    #[schema(value_type = QueuedSchema)]
    pub(super) queued: Queued,
    /// The seed's routes only: `success` and `versionId`.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = SeedAnswer)]
    pub(super) seed: Option<SeedAnswer>,
    /// A retry's: the build it repeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false)]
    pub(super) retry_of: Option<VersionId>,
    /// A redeploy's: the version whose sources it builds.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false)]
    pub(super) redeploy_of: Option<VersionId>,
}

/// The seed's answer had `success` and `versionId`; a build id is a version id.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(description = "The seed's routes' members (absent on the Kiln routes)")]
pub(super) struct SeedAnswer {
    #[schema(required = false)]
    success: bool,
    #[schema(value_type = String, required = false)]
    version_id: VersionId,
}

/// A 202 with its `Location`. The body is written as a JSON value (its keys sorted), as a
/// replay writes the stored one: a retry with the same `Idempotency-Key` gets the same bytes.
pub(super) fn accepted(answer: &Accepted) -> HttpResponse {
    let body = serde_json::to_value(answer).expect("a response always serialises");
    HttpResponse::Accepted()
        .insert_header(("Location", answer.queued.status_url.clone()))
        .json(body)
}

/// Queue a build
///
/// A first build with the full tree, or a rebuild with a delta over `baseVersionId` (default:
/// the latest deployed version). With an `Idempotency-Key`, a retry with the same key and body
/// gets the first answer again.
#[utoipa::path(
    post,
    operation_id = "createBuild",
    path = "/v1/builds",
    tag = "builds",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of this request safe: the same key and body answer the first answer again")),
    request_body = BuildRequestSchema,
    responses(
        (status = 202, description = "Queued", body = Accepted, headers(("Location" = String, description = "The build's URL (`statusUrl`)"))),
        (status = 404, description = "The user is not the token's (a user token)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another build of the project is queued or running (`build_in_flight`, `buildId`; `onConflict: supersede` replaces a queued one, `cancel-running` a running one too), or the same Idempotency-Key is in use (`idempotency_key_in_use`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over KILN_MAX_BODY_MB (`payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid ids, paths, files or base version (`validation_failed`, `invalid_path`, `preview_host_taken`), or a reused Idempotency-Key with another body (`idempotency_key_reused`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A quota is used up (`quota_exceeded`: `quota`, `limit`, `window`, `retryAfter`; KILN_QUOTA_NEW_PROJECTS_PER_HOUR for a project's first build, per user; KILN_QUOTA_REBUILDS_PER_HOUR for later builds, per project), nothing stored or queued; or the per-IP rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue is unavailable: the build is recorded failed (`queue_unavailable`, `buildId`); or a dependency is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn create(
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    submit(&caller, &req, &body, &state, Flavour::Kiln).await
}

/// Queue a first build (seed alias)
///
/// The seed's route for `POST /v1/builds`; its answer also has `success` and `versionId`.
#[utoipa::path(
    post,
    operation_id = "seedBuildPreviewForNewProject",
    path = "/build-preview-for-new-project",
    tag = "seed",
    request_body = BuildRequestSchema,
    responses(
        (status = 202, description = "Queued, with `success` and `versionId`", body = Accepted, headers(("Location" = String, description = "The build's URL (`statusUrl`)"))),
        (status = 404, description = "The user is not the token's (a user token)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another build of the project is queued or running", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over KILN_MAX_BODY_MB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid ids, paths, files or base version", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A quota is used up (`quota_exceeded`), or the per-IP rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue is unavailable: the build is recorded failed (`queue_unavailable`); or a dependency is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[deprecated = "the seed clients' route: use POST /v1/builds"]
async fn seed_new_project(
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    submit(&caller, &req, &body, &state, Flavour::SeedNewProject).await
}

/// Queue a rebuild (seed alias)
///
/// The seed's route for `POST /v1/builds` of a project that has a deployed version; its answer
/// also has `success` and `versionId`.
#[utoipa::path(
    post,
    operation_id = "seedRebuildPreview",
    path = "/rebuild-preview",
    tag = "seed",
    request_body = BuildRequestSchema,
    responses(
        (status = 202, description = "Queued, with `success` and `versionId`", body = Accepted, headers(("Location" = String, description = "The build's URL (`statusUrl`)"))),
        (status = 404, description = "The user is not the token's (a user token)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another build of the project is queued or running", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over KILN_MAX_BODY_MB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The project has no deployed version, or invalid ids, paths, files or base version", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A quota is used up (`quota_exceeded`), or the per-IP rate limit", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue is unavailable: the build is recorded failed (`queue_unavailable`); or a dependency is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[deprecated = "the seed clients' route: use POST /v1/builds"]
async fn seed_rebuild(
    caller: Caller,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    submit(&caller, &req, &body, &state, Flavour::SeedRebuild).await
}

/// Admission with idempotency ([`idempotency::run_once`]): the same key and body replays the
/// first answer; the same key with another body is a 422.
async fn submit(
    caller: &Caller,
    req: &HttpRequest,
    body: &web::Bytes,
    state: &AppState,
    flavour: Flavour,
) -> Result<HttpResponse, ApiError> {
    let key = idempotency::key(req, caller)?;
    let signature = req.extensions().get::<UnrecordedSignature>().map(|s| s.0.clone());
    let admitted = admit(caller, body, state, flavour, signature);
    let Some(key) = key else {
        return admitted.await.map(|answer| accepted(&answer));
    };
    let body_hash = sha256_hex(body);
    match idempotency::run_once(
        &state.idempotency,
        &key,
        &body_hash,
        StatusCode::ACCEPTED,
        admitted,
    )
    .await?
    {
        Once::Ran(answer) => Ok(accepted(&answer)),
        Once::Replayed(response) => Ok(response),
    }
}

/// Parses, checks and admits a request; the answer of a 202.
async fn admit(
    caller: &Caller,
    body: &web::Bytes,
    state: &AppState,
    flavour: Flavour,
    signature: Option<SignatureRecord>,
) -> Result<Accepted, ApiError> {
    let parsed: BuildRequestBody = json_body(body)?;
    let request = BuildRequest::parse(parsed, state.settings.api.file_limits())?;
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
    let queued = Box::pin(builds::admit(&state.builds(), request, signature)).await?;
    let seed = (flavour != Flavour::Kiln).then_some(SeedAnswer {
        success: true,
        version_id: queued.build_id,
    });
    Ok(Accepted {
        queued,
        seed,
        retry_of: None,
        redeploy_of: None,
    })
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

/// One build
///
/// A build (= version) with its status, error, failed step, metrics, progress (0-100) and
/// latest event; while queued, its place in the queue and an estimated start.
#[utoipa::path(
    get,
    operation_id = "getBuild",
    path = "/v1/builds/{id}",
    tag = "builds",
    params(("id" = String, Path, description = "The build's id")),
    responses(
        (status = 200, description = "The build", body = BuildDetail),
        (status = 404, description = "Unknown build", body = Problem, content_type = "application/problem+json"),
    ),
)]
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
        BuildStatus::Queued => match estimate::for_build(&state.builds(), id).await {
            Ok(estimate) => Some(estimate),
            Err(e) => {
                // The build itself is still worth answering with.
                tracing::warn!(error = %e, "cannot estimate the build's start");
                None
            }
        },
        _ => None,
    };
    // A build that started with no values recorded none (an empty environment).
    let now = version
        .env
        .clone()
        .or_else(|| version.started_at.map(|_| Vec::new()));
    let env_changed = match (now, version.parent_version_id) {
        (Some(now), Some(parent)) => match versions::env_of(&state.db, parent).await? {
            Some(before) if before.is_some() || !now.is_empty() => Some(kiln_shared::domain::changed_names(
                &now,
                before.as_deref().unwrap_or_default(),
            )),
            _ => None,
        },
        (Some(now), None) if !now.is_empty() => Some(now.iter().map(|e| e.name.clone()).collect()),
        _ => None,
    };
    Ok(HttpResponse::Ok().json(BuildDetail {
        env_changed,
        build: BuildView::new(version, &state.urls),
        progress,
        latest_event: latest,
        queue,
    }))
}

/// `GET /v1/builds/{id}`: the build, how far along it is and its newest event.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct BuildDetail {
    #[serde(flatten)]
    build: BuildView,
    /// 0-100; 100 once the build ended.
    progress: i16,
    #[schema(value_type = Option<BuildEventSchema>)]
    latest_event: Option<events::BuildEvent>,
    /// The environment names whose value (or presence) differs from the parent version's, by
    /// keyed hash (absent when the build or its parent has no recorded environment).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    env_changed: Option<Vec<String>>,
    /// While queued: `queuePosition`, `estimatedStartAt` and what they were computed from.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = QueueEstimateSchema)]
    queue: Option<QueueEstimate>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this user's builds (a user token: its own only).
    user_id: Option<String>,
    project_id: Option<String>,
    /// `queued`, `running`, `deployed`, `failed`, `cancelled` or `superseded`.
    status: Option<String>,
    /// 1-100, default 20.
    limit: Option<i64>,
    /// A cursor: `nextCursor` of the page before.
    before: Option<String>,
}

fn bad(e: impl ToString) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

/// List builds
///
/// Builds newest first, filtered by the query.
#[utoipa::path(
    get,
    operation_id = "listBuilds",
    path = "/v1/builds",
    tag = "builds",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of builds", body = BuildPage),
        (status = 404, description = "Another user's builds (a user token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn list(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let filter = list_filter(req.query_string(), &caller)?;
    let rows = versions::list(&state.db, &filter).await?;
    let page = BuildPage {
        next_cursor: next_cursor(&rows, filter.limit),
        builds: views(rows, &state.urls),
    };
    Ok(sorted(StatusCode::OK, &page))
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

#[cfg(test)]
mod tests {
    use kiln_shared::preview::PreviewUrls;

    use super::*;

    fn queued() -> Queued {
        let urls = PreviewUrls {
            scheme: "http".into(),
            domain: "localhost".into(),
            port: Some(8081),
        };
        let user = UserId::parse("u_1").unwrap();
        Queued::new(&urls, VersionId::new(), user, ProjectId::parse("p-1").unwrap())
    }

    /// The body is the queued build's, with the seed's `success` and `versionId` or a retry's
    /// `retryOf` beside it, and its keys in order: as a replay of the stored record writes it.
    #[test]
    fn a_202_is_the_queued_build_and_its_extras_in_key_order() {
        let q = queued();
        let seed = Accepted {
            seed: Some(SeedAnswer {
                success: true,
                version_id: q.build_id,
            }),
            queued: q.clone(),
            retry_of: None,
            redeploy_of: None,
        };
        let mut expected = serde_json::to_value(&q).unwrap();
        expected["success"] = true.into();
        expected["versionId"] = q.build_id.to_string().into();
        assert_eq!(serde_json::to_value(&seed).unwrap(), expected);

        let old = VersionId::new();
        let retry = Accepted {
            queued: q.clone(),
            seed: None,
            retry_of: Some(old),
            redeploy_of: None,
        };
        let mut expected = serde_json::to_value(&q).unwrap();
        expected["retryOf"] = old.to_string().into();
        assert_eq!(serde_json::to_value(&retry).unwrap(), expected);

        let response = accepted(&retry);
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.headers().get("location").unwrap(), q.status_url.as_str());
        let body = actix_web::body::to_bytes(response.into_body());
        let body = futures::executor::block_on(body).unwrap();
        // A replay writes the stored `serde_json::Value`: these bytes.
        assert_eq!(body, serde_json::to_vec(&expected).unwrap());
    }
}
