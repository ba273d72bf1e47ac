//! User tokens: `POST /v1/tokens` (operator or back end) makes one for a user and shows it once;
//! `GET /v1/tokens?userId=` lists a user's tokens (never the tokens themselves);
//! `DELETE /v1/tokens/{id}` revokes one (a user token may revoke its own user's tokens).

use actix_web::{web, HttpRequest, HttpResponse};
use kiln_shared::db::tokens;
use kiln_shared::domain::UserId;
use serde::Deserialize;
use serde_json::json;

use super::parse::{json_body, query};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tokens", web::post().to(create))
        .route("/tokens", web::get().to(list))
        .route("/tokens/{id}", web::delete().to(revoke));
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    user_id: String,
    description: Option<String>,
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

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
    let mut view = serde_json::to_value(&created).expect("a token always serialises");
    // The only time the token is shown; Kiln keeps its SHA-256 only.
    view["token"] = token.into();
    Ok(HttpResponse::Created().json(view))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    user_id: Option<String>,
}

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
    Ok(HttpResponse::Ok().json(json!({ "tokens": tokens::list(&state.db, &user).await? })))
}

fn token_id(raw: &str) -> Result<&str, ApiError> {
    let ok = raw.len() == 26 && raw.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    ok.then_some(raw)
        .ok_or_else(|| ApiError::BadRequest(format!("a token id is 26 characters of 0-9a-z, got {raw:?}")))
}

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
