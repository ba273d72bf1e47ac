//! A project's environment: `GET /v1/projects/{userId}/{projectId}/env`, and `PUT`/`DELETE`
//! of `.../env/{name}`. Plain values are returned; a secret's value never is (by any route):
//! it is sealed with the farm's current key before it is stored.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use kiln_shared::db::projects::env::{self as project_env, StoredValue, StoredVar, MAX_VARS};
use kiln_shared::domain::{check_value, EnvName};
use kiln_shared::secrets::context;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::parse::json_body;
use super::projects::project;
use super::serve;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::problem::Problem;
use crate::state::AppState;
use crate::views::sorted;

pub fn configure(cfg: &mut web::ServiceConfig) {
    serve::<__path_list, _, _>(cfg, "/v1", list);
    serve::<__path_put, _, _>(cfg, "/v1", put);
    serve::<__path_delete, _, _>(cfg, "/v1", delete);
}

/// One value of a project's environment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarView {
    name: String,
    /// A secret's value is never returned.
    secret: bool,
    /// The value (plain values only).
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    updated_at: DateTime<Utc>,
}

impl From<StoredVar> for EnvVarView {
    fn from(v: StoredVar) -> Self {
        let (secret, value) = match v.value {
            StoredValue::Plain(value) => (false, Some(value)),
            StoredValue::Secret(_) => (true, None),
        };
        Self {
            name: v.name,
            secret,
            value,
            updated_at: v.updated_at,
        }
    }
}

/// `GET .../env`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnvList {
    vars: Vec<EnvVarView>,
}

/// `PUT .../env/{name}`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutEnvBody {
    /// At most 32 KB.
    value: Option<String>,
    /// Encrypted at rest and never returned (default false).
    secret: Option<bool>,
}

/// A project's environment
///
/// The values a project's build and checks steps see (not the install). Secrets are listed
/// by name only.
#[utoipa::path(
    get,
    operation_id = "listEnv",
    path = "/v1/projects/{userId}/{projectId}/env",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path)),
    responses(
        (status = 200, description = "The project's values, by name", body = EnvList),
        (status = 404, description = "Another user's project (a user token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn list(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&path, &caller)?;
    let vars = project_env::list(&state.db, &user, &project).await?;
    Ok(sorted(
        StatusCode::OK,
        &EnvList {
            vars: vars.into_iter().map(EnvVarView::from).collect(),
        },
    ))
}

/// The name in a path, checked.
fn name_of(raw: &str) -> Result<EnvName, ApiError> {
    EnvName::parse(raw).map_err(|e| ApiError::Unprocessable(e.to_string()))
}

/// Set an environment value
///
/// Creates or replaces one value. A secret (`"secret": true`) is encrypted with the farm's
/// key (`KILN_SECRETS_KEY`); a name bundlers publish (`VITE_`, `NEXT_PUBLIC_`…) cannot be a
/// secret. The next build sees it (a redeploy builds with it).
#[utoipa::path(
    put,
    operation_id = "setEnv",
    path = "/v1/projects/{userId}/{projectId}/env/{name}",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path), ("name" = String, Path, description = "`[A-Z_][A-Z0-9_]*`, at most 128 bytes")),
    request_body = PutEnvBody,
    responses(
        (status = 200, description = "Set (a secret's value is not returned)", body = EnvVarView),
        (status = 404, description = "Another user's project (a user token)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A name Kiln or the sandbox owns, a bad name, a value over 32 KB, a secret under a published prefix, or the project's 200 values used (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "This farm has no key for secrets", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn put(
    caller: Caller,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&(path.0.clone(), path.1.clone()), &caller)?;
    let name = name_of(&path.2)?;
    let body: PutEnvBody = json_body(&body)?;
    let value = body.value.ok_or_else(|| {
        ApiError::Unprocessable(format!("value is missing: send {{\"value\": \"…\"}} for {name}"))
    })?;
    check_value(&name, &value).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let secret = body.secret.unwrap_or(false);
    let stored = match secret {
        false => StoredValue::Plain(value),
        true => {
            name.check_secret()
                .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
            let keyring = state.keyring.as_ref().ok_or_else(|| ApiError::Refused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "this farm has no key for projects' secrets (its operator sets KILN_SECRETS_KEY); store the value as a plain one or ask the operator".into(),
            })?;
            StoredValue::Secret(
                keyring.seal(&context(user.as_str(), project.as_str(), name.as_str()), &value),
            )
        }
    };
    let saved = project_env::put(&state.db, &user, &project, &name, &stored)
        .await?
        .ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "project {user}/{project} has {MAX_VARS} environment values already; delete one before adding {name}"
            ))
        })?;
    tracing::info!(%user, %project, %name, secret, "environment value set");
    Ok(sorted(StatusCode::OK, &EnvVarView::from(saved)))
}

/// `DELETE .../env/{name}`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnvDeleted {
    name: String,
    deleted: bool,
}

/// Remove an environment value
#[utoipa::path(
    delete,
    operation_id = "deleteEnv",
    path = "/v1/projects/{userId}/{projectId}/env/{name}",
    tag = "projects",
    params(("userId" = String, Path), ("projectId" = String, Path), ("name" = String, Path)),
    responses(
        (status = 200, description = "Removed", body = EnvDeleted),
        (status = 404, description = "The project has no such value (or is another user's, for a user token)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid name (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn delete(
    caller: Caller,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (user, project) = project(&(path.0.clone(), path.1.clone()), &caller)?;
    let name = name_of(&path.2)?;
    if !project_env::delete(&state.db, &user, &project, &name).await? {
        return Err(ApiError::NotFound(format!(
            "project {user}/{project} has no environment value {name}"
        )));
    }
    tracing::info!(%user, %project, %name, "environment value removed");
    Ok(sorted(
        StatusCode::OK,
        &EnvDeleted {
            name: name.to_string(),
            deleted: true,
        },
    ))
}
