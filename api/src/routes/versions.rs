//! A project's versions: rollback, diff, files, zip export and pins.
//! All under `/v1/projects/{userId}/{projectId}/...`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use kiln_shared::db::versions::{self, Version};
use kiln_shared::domain::{BuildStatus, ProjectId, RelativePath, UserId, VersionId};
use kiln_shared::store::Manifest;
use serde::Deserialize;
use serde_json::json;

use super::parse::{json_body, query};
use super::projects::project;
use crate::builds;
use crate::caller::Caller;
use crate::diff::{self, ChangeKind};
use crate::error::ApiError;
use crate::export;
use crate::preview::Representation;
use crate::state::AppState;
use crate::views::BuildView;

pub fn configure(cfg: &mut web::ServiceConfig) {
    const V: &str = "/projects/{user}/{project}/versions";
    cfg.route("/projects/{user}/{project}/rollback", web::post().to(rollback))
        .route(&format!("{V}/{{a}}/diff/{{b}}"), web::get().to(diff))
        .route(&format!("{V}/{{id}}/files"), web::get().to(files))
        .route(&format!("{V}/{{id}}/files/{{path:.*}}"), web::get().to(file))
        .route(&format!("{V}/{{id}}/artifact"), web::get().to(artifact))
        .route(&format!("{V}/{{id}}/pin"), web::post().to(pin))
        .route(&format!("{V}/{{id}}/pin"), web::delete().to(unpin));
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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RollbackBody {
    version_id: Option<String>,
}

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
    Ok(HttpResponse::Ok().json(json!({
        "rolledBackTo": target,
        "previewUrl": view.preview_url,
        "latestUrl": view.latest_url,
        "version": view,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiffQuery {
    mode: Option<String>,
}

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
    Ok(HttpResponse::Ok().json(json!({
        "from": a,
        "to": b,
        "summary": {
            "added": count(ChangeKind::Added),
            "removed": count(ChangeKind::Removed),
            "modified": count(ChangeKind::Modified),
            "additions": changes.iter().map(|c| c.additions).sum::<usize>(),
            "deletions": changes.iter().map(|c| c.deletions).sum::<usize>(),
        },
        "files": changes,
    })))
}

fn listing(m: &Manifest) -> serde_json::Value {
    m.files
        .iter()
        .map(|(path, e)| json!({ "path": path, "size": e.size, "hash": e.hash, "contentType": e.content_type }))
        .collect()
}

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
    Ok(
        HttpResponse::Ok()
            .json(json!({ "id": v.id, "source": listing(&source), "output": listing(&output) })),
    )
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ArtifactQuery {
    source: Option<bool>,
}

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

async fn pin(
    caller: Caller,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    set_pin(caller, path, state, true).await
}

async fn unpin(
    caller: Caller,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    set_pin(caller, path, state, false).await
}
