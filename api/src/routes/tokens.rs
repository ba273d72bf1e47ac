//! User tokens: `POST /v1/tokens` (operator or back end) makes one for a user and shows it once;
//! `GET /v1/tokens?userId=` lists a user's tokens (never the tokens themselves);
//! `DELETE /v1/tokens/{id}` revokes one (a user token may revoke its own user's tokens).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use kiln_shared::db::tokens::{self, UserToken};
use kiln_shared::domain::UserId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::parse::{json_body, query};
use super::serve;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::problem::Problem;
use crate::state::AppState;
use crate::views::schemas::UserTokenSchema;
use crate::views::sorted;

pub fn configure(cfg: &mut web::ServiceConfig) {
    serve::<__path_create, _, _>(cfg, "/v1", create);
    serve::<__path_list, _, _>(cfg, "/v1", list);
    serve::<__path_revoke, _, _>(cfg, "/v1", revoke);
}

/// `POST /v1/tokens`' body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = NewToken)]
struct CreateBody {
    user_id: String,
    /// At most 200 characters, without control characters.
    description: Option<String>,
}

/// A token just made: the only answer that shows it (Kiln keeps its SHA-256 only).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CreatedToken)]
struct Created {
    #[serde(flatten)]
    #[schema(value_type = UserTokenSchema)]
    row: UserToken,
    /// `kiln_ut_...`: send it as `Authorization: Bearer <token>`.
    token: String,
}

/// `GET /v1/tokens`' answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Newest first.
    #[schema(value_type = Vec<UserTokenSchema>)]
    tokens: Vec<UserToken>,
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Make a user token
///
/// A user token for `userId` (operator or back end only); the token is in this answer only.
#[utoipa::path(
    post,
    operation_id = "createToken",
    path = "/v1/tokens",
    tag = "tokens",
    request_body = CreateBody,
    responses(
        (status = 201, description = "The token", body = Created, headers(("Location" = String, description = "The token's URL (`/v1/tokens/{id}`)"))),
        (status = 404, description = "A user token (operators and the back end only)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn create(
    caller: Caller,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    let body: CreateBody = json_body(&body)?;
    let user = user_id(&body.user_id)?;
    let description = body
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty());
    if description.is_some_and(|d| d.chars().count() > 200 || d.chars().any(char::is_control)) {
        return Err(ApiError::BadRequest(
            "description must be at most 200 characters, without control characters".into(),
        ));
    }
    let id = ulid::Ulid::new().to_string().to_ascii_lowercase();
    let (token, hash) = tokens::mint();
    let created = tokens::create(&state.db, &id, &user, &hash, description).await?;
    tracing::info!(token_id = %id, user_id = %user, "user token created");
    // The only time the token is shown; Kiln keeps its SHA-256 only.
    let mut res = sorted(StatusCode::CREATED, &Created { row: created, token });
    res.headers_mut().insert(
        actix_web::http::header::LOCATION,
        actix_web::http::header::HeaderValue::from_str(&format!("/v1/tokens/{id}"))
            .map_err(ApiError::internal)?,
    );
    Ok(res)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Whose tokens (required, but for a user token: its own).
    user_id: Option<String>,
}

/// A user's tokens
///
/// Newest first, never the tokens themselves.
#[utoipa::path(
    get,
    operation_id = "listTokens",
    path = "/v1/tokens",
    tag = "tokens",
    params(ListQuery),
    responses(
        (status = 200, description = "The tokens", body = TokenList),
        (status = 404, description = "Another user's (a user token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn list(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q: ListQuery = query(&req)?;
    let user = match (q.user_id.as_deref().map(user_id).transpose()?, caller.user()) {
        (Some(user), _) => user,
        (None, Some(own)) => own.clone(),
        (None, None) => return Err(ApiError::BadRequest("userId is required".into())),
    };
    caller.check(&user, || ApiError::NotFound(format!("user {user} not found")))?;
    let tokens = tokens::list(&state.db, &user).await?;
    Ok(sorted(StatusCode::OK, &TokenList { tokens }))
}

fn token_id(raw: &str) -> Result<&str, ApiError> {
    let ok = raw.len() == 26 && raw.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    ok.then_some(raw)
        .ok_or_else(|| ApiError::BadRequest(format!("a token id is 26 characters of 0-9a-z, got {raw:?}")))
}

/// Revoke a user token
///
/// A user token may revoke its own user's.
#[utoipa::path(
    delete,
    operation_id = "revokeToken",
    path = "/v1/tokens/{id}",
    tag = "tokens",
    params(("id" = String, Path, description = "The token's id (not the token)")),
    responses(
        (status = 200, description = "The token, with `revokedAt`", body = UserTokenSchema),
        (status = 404, description = "Unknown token", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn revoke(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = token_id(&path)?;
    let missing = || ApiError::NotFound(format!("token {id} not found"));
    let token = tokens::get(&state.db, id).await?.ok_or_else(missing)?;
    let owner = UserId::parse(&token.user_id).map_err(ApiError::internal)?;
    caller.check(&owner, missing)?;
    let revoked = tokens::revoke(&state.db, id).await?.ok_or_else(missing)?;
    tracing::info!(token_id = %id, user_id = %owner, "user token revoked");
    Ok(HttpResponse::Ok().json(revoked))
}
