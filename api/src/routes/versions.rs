//! A project's versions: rollback, diff, files, zip export and pins.
//! All under `/v1/projects/{userId}/{projectId}/...`.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use kiln_shared::db::versions::{self, Version};
use kiln_shared::domain::{BuildStatus, ProjectId, RelativePath, UserId, VersionId};
use kiln_shared::store::Manifest;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::parse::{json_body, query};
use super::projects::project;
use super::serve;
use crate::builds;
use crate::caller::Caller;
use crate::diff::{self, ChangeKind, FileChange};
use crate::error::ApiError;
use crate::export;
use crate::preview::Representation;
use crate::problem::Problem;
use crate::state::AppState;
use crate::views::schemas::FileChangeSchema;
use crate::views::{sorted, BuildView};

pub fn configure(cfg: &mut web::ServiceConfig) {
    serve::<__path_rollback, _, _>(cfg, "/v1", rollback);
    serve::<__path_diff, _, _>(cfg, "/v1", diff);
    serve::<__path_files, _, _>(cfg, "/v1", files);
    serve::<__path_file, _, _>(cfg, "/v1", file);
    serve::<__path_artifact, _, _>(cfg, "/v1", artifact);
    serve::<__path_pin, _, _>(cfg, "/v1", pin);
    serve::<__path_unpin, _, _>(cfg, "/v1", unpin);
}

/// `POST .../rollback`'s answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolledBack {
    latest_url: String,
    preview_url: Option<String>,
    /// The version rolled back (or forward) to.
    #[schema(value_type = String)]
    rolled_back_to: VersionId,
    /// The new version: a copy of the target, deployed.
    version: BuildView,
}

/// `GET .../diff/{b}?mode=stat`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Comparison {
    #[schema(value_type = Vec<FileChangeSchema>)]
    files: Vec<FileChange>,
    #[schema(value_type = String)]
    from: VersionId,
    summary: DiffSummary,
    #[schema(value_type = String)]
    to: VersionId,
}

/// How many paths were added, removed and modified, and how many lines.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiffSummary {
    /// Paths added.
    added: usize,
    /// Lines added.
    additions: usize,
    /// Lines removed.
    deletions: usize,
    /// Paths modified.
    modified: usize,
    /// Paths removed.
    removed: usize,
}

/// One file of a version.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    content_type: String,
    /// The content's SHA-256 (hex).
    hash: String,
    path: String,
    size: u64,
}

/// `GET .../files`' answer: a version's source and output files.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileListing {
    #[schema(value_type = String)]
    id: VersionId,
    output: Vec<FileEntry>,
    source: Vec<FileEntry>,
}

fn version_id(field: &'static str, raw: &str) -> Result<VersionId, ApiError> {
    VersionId::parse_field(field, raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// A version of this project, or a 404 that does not say whether it exists elsewhere.
async fn project_version(
    state: &AppState,
    user: &UserId,
    project: &ProjectId,
    id: VersionId,
) -> Result<Version, ApiError> {
    versions::get(&state.db, id)
        .await?
        .filter(|v| &v.user_id == user && &v.project_id == project)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "version {id} is not a version of project {user}/{project}"
            ))
        })
}

async fn manifest_of(state: &AppState, key: Option<&str>) -> Result<Manifest, ApiError> {
    match key {
        None => Ok(Manifest::default()),
        Some(key) => state
            .artifacts
            .get_manifest(key)
            .await?
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("manifest {key} is missing"))),
    }
}

async fn sources_of(state: &AppState, v: &Version) -> Result<Manifest, ApiError> {
    Ok(v.sources(&state.artifacts).await?)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = Rollback)]
struct RollbackBody {
    /// The deployed version to roll back (or forward) to.
    version_id: Option<String>,
}

/// Roll back (or forward)
///
/// To a deployed version of the project: a new version row and a pointer flip; nothing is
/// rebuilt.
#[utoipa::path(
    post,
    operation_id = "rollback",
    path = "/v1/projects/{userId}/{projectId}/rollback",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path)),
    request_body = RollbackBody,
    responses(
        (status = 200, description = "Rolled back", body = RolledBack),
        (status = 404, description = "Not a version of this project", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The target is not deployed (`wrong_status`), or a build or rollback of the project is in flight (`build_in_flight`, `rollback_in_flight`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`versionId` is missing or not a version id (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn rollback(
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&path, &caller)?;
    let body: RollbackBody = json_body(&body)?;
    let target = VersionId::parse_field("versionId", body.version_id.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let version = builds::rollback(&state.builds(), &user, &project, target).await?;
    let view = BuildView::new(version, &state.urls);
    Ok(sorted(
        StatusCode::OK,
        &RolledBack {
            latest_url: view.latest_url.clone(),
            preview_url: view.preview_url.clone(),
            rolled_back_to: target,
            version: view,
        },
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DiffQuery {
    /// `stat` (the default: JSON) or `patch` (a unified diff, text/x-diff).
    #[param(pattern = "^(stat|patch)$")]
    mode: Option<String>,
}

/// Compare two versions' sources
///
/// `mode=stat`: the paths added, removed and modified with their line counts; `mode=patch`: a
/// unified diff.
#[utoipa::path(
    get,
    operation_id = "diffVersions",
    path = "/v1/projects/{userId}/{projectId}/versions/{a}/diff/{b}",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path), ("a" = String, Path, description = "The version compared from"), ("b" = String, Path, description = "The version compared to"), DiffQuery),
    responses(
        (status = 200, description = "The comparison", content((Comparison = "application/json"), (String = "text/x-diff; charset=utf-8"))),
        (status = 404, description = "A version is not in this project", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn diff(
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String, String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&(path.0.clone(), path.1.clone()), &caller)?;
    let (a, b) = (version_id("a", &path.2)?, version_id("b", &path.3)?);
    let q: DiffQuery = query(&req)?;
    let patch = match q.mode.as_deref() {
        None | Some("stat") => false,
        Some("patch") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "mode must be stat or patch (got {other:?})"
            )))
        }
    };
    let (va, vb) = futures::try_join!(
        project_version(&state, &user, &project, a),
        project_version(&state, &user, &project, b)
    )?;
    let (ma, mb) = futures::try_join!(sources_of(&state, &va), sources_of(&state, &vb))?;
    let changes = diff::compare(&state.artifacts, &ma, &mb).await?;
    if patch {
        let text: String = changes.iter().map(|c| c.patch.as_str()).collect();
        return Ok(HttpResponse::Ok()
            .content_type("text/x-diff; charset=utf-8")
            .body(text));
    }
    let count = |k: ChangeKind| changes.iter().filter(|c| c.change == k).count();
    let summary = DiffSummary {
        added: count(ChangeKind::Added),
        additions: changes.iter().map(|c| c.additions).sum::<usize>(),
        deletions: changes.iter().map(|c| c.deletions).sum::<usize>(),
        modified: count(ChangeKind::Modified),
        removed: count(ChangeKind::Removed),
    };
    Ok(sorted(
        StatusCode::OK,
        &Comparison {
            files: changes,
            from: a,
            summary,
            to: b,
        },
    ))
}

fn listing(m: &Manifest) -> Vec<FileEntry> {
    m.files
        .iter()
        .map(|(path, e)| FileEntry {
            content_type: e.content_type.clone(),
            hash: e.hash.clone(),
            path: path.clone(),
            size: e.size,
        })
        .collect()
}

/// A version's files
///
/// Its source and output files: path, size, hash, content type.
#[utoipa::path(
    get,
    operation_id = "listVersionFiles",
    path = "/v1/projects/{userId}/{projectId}/versions/{id}/files",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path), ("id" = String, Path, description = "The version's id")),
    responses(
        (status = 200, description = "The files", body = FileListing),
        (status = 404, description = "Unknown version", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn files(
    caller: Caller,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&(path.0.clone(), path.1.clone()), &caller)?;
    let v = project_version(&state, &user, &project, version_id("version id", &path.2)?).await?;
    let (source, output) = futures::try_join!(
        sources_of(&state, &v),
        manifest_of(&state, v.output_manifest_key.as_deref())
    )?;
    Ok(sorted(
        StatusCode::OK,
        &FileListing {
            id: v.id,
            output: listing(&output),
            source: listing(&source),
        },
    ))
}

/// One source file of a version
///
/// Its content, with an `ETag`; `If-None-Match` with that tag (a list, weak tags and `*`
/// included) answers 304.
#[utoipa::path(
    get,
    operation_id = "getVersionFile",
    path = "/v1/projects/{userId}/{projectId}/versions/{id}/files/{path}",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path), ("id" = String, Path, description = "The version's id"), ("path" = String, Path, description = "The file's path (its slashes as they are)"), ("If-None-Match" = Option<String>, Header, description = "Entity tags: a 304 when one matches the file's")),
    responses(
        (status = 200, description = "The file, as its content type", content_type = "application/octet-stream", body = Vec<u8>, headers(("ETag" = String, description = "The content's tag"))),
        (status = 304, description = "Not modified: `If-None-Match` names the file's tag", headers(("ETag" = String))),
        (status = 404, description = "Unknown version or file", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn file(
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String, String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&(path.0.clone(), path.1.clone()), &caller)?;
    let v = project_version(&state, &user, &project, version_id("version id", &path.2)?).await?;
    let file = RelativePath::parse(&path.3).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let source = sources_of(&state, &v).await?;
    let entry = source
        .files
        .get(file.as_str())
        .ok_or_else(|| ApiError::NotFound(format!("{file} is not a source file of version {}", v.id)))?;
    let representation = Representation::of(&req, entry);
    if representation.not_modified(&req) {
        let mut reply = HttpResponse::NotModified();
        representation.headers(&mut reply);
        return Ok(reply.finish());
    }
    let (body, encoding) = state.artifacts.read_as(entry, representation.gzip).await?;
    let mut reply = HttpResponse::Ok();
    representation.headers(&mut reply);
    if let Some(name) = encoding.http_name() {
        reply.insert_header((header::CONTENT_ENCODING, name));
    }
    Ok(reply
        .insert_header((header::CONTENT_TYPE, entry.content_type.as_str()))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ArtifactQuery {
    /// The version's sources instead of its output.
    source: Option<bool>,
}

/// Download a version
///
/// A zip of the version's output (`source=true`: its sources), streamed.
#[utoipa::path(
    get,
    operation_id = "downloadVersion",
    path = "/v1/projects/{userId}/{projectId}/versions/{id}/artifact",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path), ("id" = String, Path, description = "The version's id"), ArtifactQuery),
    responses(
        (status = 200, description = "The zip", content_type = "application/zip", body = Vec<u8>),
        (status = 404, description = "Unknown version", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The version has no output (it is not deployed: `wrong_status`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn artifact(
    caller: Caller,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&(path.0.clone(), path.1.clone()), &caller)?;
    let v = project_version(&state, &user, &project, version_id("version id", &path.2)?).await?;
    let q: ArtifactQuery = query(&req)?;
    let source = q.source.unwrap_or(false);
    let manifest = if source {
        sources_of(&state, &v).await?
    } else {
        if v.status != BuildStatus::Deployed {
            return Err(ApiError::WrongStatus {
                message: format!("version {} is {}: it has no output to download", v.id, v.status),
                build_id: v.id.to_string(),
            });
        }
        manifest_of(&state, v.output_manifest_key.as_deref()).await?
    };
    let name = format!(
        "{}-{}{}.zip",
        v.project_id,
        v.id,
        if source { "-source" } else { "" }
    );
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .streaming(export::zip_stream(state.artifacts.clone(), manifest)))
}

async fn set_pin(
    caller: Caller,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
    pinned: bool,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&(path.0.clone(), path.1.clone()), &caller)?;
    let v = project_version(&state, &user, &project, version_id("version id", &path.2)?).await?;
    let v = versions::set_pinned(&state.db, v.id, pinned)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("version {} not found", v.id)))?;
    Ok(HttpResponse::Ok().json(BuildView::new(v, &state.urls)))
}

/// Pin a version
///
/// Retention never removes a pinned version.
#[utoipa::path(
    post,
    operation_id = "pinVersion",
    path = "/v1/projects/{userId}/{projectId}/versions/{id}/pin",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path), ("id" = String, Path, description = "The version's id")),
    responses(
        (status = 200, description = "The version", body = BuildView),
        (status = 404, description = "Unknown version", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn pin(
    caller: Caller,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    set_pin(caller, path, state, true).await
}

/// Unpin a version
#[utoipa::path(
    delete,
    operation_id = "unpinVersion",
    path = "/v1/projects/{userId}/{projectId}/versions/{id}/pin",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path), ("id" = String, Path, description = "The version's id")),
    responses(
        (status = 200, description = "The version", body = BuildView),
        (status = 404, description = "Unknown version", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn unpin(
    caller: Caller,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    set_pin(caller, path, state, false).await
}
