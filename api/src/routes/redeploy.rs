//! `POST /v1/projects/{userId}/{projectId}/redeploy`: a new build of a version's sources with
//! the project's settings and environment as they are now.

use actix_web::{web, HttpResponse};
use kiln_shared::domain::VersionId;
use serde::Deserialize;
use utoipa::ToSchema;

use super::builds::{accepted, Accepted};
use super::parse::json_body;
use super::projects::project;
use super::serve;
use crate::builds;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::problem::Problem;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    serve::<__path_redeploy, _, _>(cfg, "/v1", redeploy);
}

/// `POST .../redeploy`'s body (optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedeployBody {
    /// The version whose sources to build (default: the latest deployed).
    version_id: Option<String>,
    /// Build even when a deployed version is identical (same sources, settings, environment
    /// and toolchain), whose output is reused otherwise (default false).
    #[schema(value_type = Option<bool>)]
    force: Option<serde_json::Value>,
}

/// Redeploy a project
///
/// Queues a new build of a version's sources (default: the latest deployed) with the
/// project's current settings and environment; `redeployOf` names the version. Counted in
/// the project's rebuilds quota. A rollback, by contrast, serves an old output as it was.
#[utoipa::path(
    post,
    operation_id = "redeploy",
    path = "/v1/projects/{userId}/{projectId}/redeploy",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path)),
    request_body(content = RedeployBody, description = "Optional"),
    responses(
        (status = 202, description = "Queued", body = Accepted, headers(("Location" = String, description = "The new build's URL (`statusUrl`)"))),
        (status = 404, description = "No such version of the project, or no deployed version", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The version is not finished (`wrong_status`), or a build of the project is in flight (`build_in_flight`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`versionId` is not a version id, or `force` not a boolean (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "A quota is used up (`quota_exceeded`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn redeploy(
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&path, &caller)?;
    let body: RedeployBody = match body.iter().all(u8::is_ascii_whitespace) {
        true => RedeployBody {
            version_id: None,
            force: None,
        },
        false => json_body(&body)?,
    };
    let version = body
        .version_id
        .filter(|v| !v.is_empty())
        .map(|v| VersionId::parse_field("versionId", &v))
        .transpose()
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let force = builds::parse_force(body.force.as_ref())?;
    let (queued, source) = builds::redeploy(&state.builds(), &user, &project, version, force).await?;
    Ok(accepted(&Accepted {
        queued,
        seed: None,
        retry_of: None,
        redeploy_of: Some(source),
    }))
}
