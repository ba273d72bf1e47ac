//! Authentication of `/v1` routes and the seed aliases, and who the caller is ([`Caller`]):
//!
//! - an operator token (`KILN_API_TOKENS`) or the product back end's HMAC signature over
//!   `{timestamp}.{METHOD}.{path_and_query}.{body}`: everything;
//! - a user token (`POST /v1/tokens`, `kiln_ut_…`, looked up by its SHA-256): its own user's
//!   projects, builds and webhooks only. Anything else answers 404, exactly as if it did not
//!   exist, so a user token does not even learn that another user's project exists.
//!
//! The body of a signed request is read here, once, under the size cap, and handed on.
//!
//! The per-IP limit ([`crate::limits`]) is counted here, before anything costly: for a user
//! token (before its lookup), a bad signature, or no credentials at all. An operator token and
//! a valid signature are not counted.

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use bytes::BytesMut;
use futures::StreamExt;
use kiln_shared::domain::UserId;
use kiln_shared::signing::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use secrecy::ExposeSecret;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn authenticate(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone();
    let ip = state.limits.client_of(req.request());
    let count = || state.limits.check_ip(ip);
    let bearer = match bearer(req.headers()) {
        Ok(b) => b,
        Err(e) => {
            count()?;
            return Err(e.into());
        }
    };
    if let Some(token) = bearer {
        let operator = state
            .settings
            .api_tokens
            .iter()
            .any(|t| signing::secrets_equal(t.expose_secret().as_bytes(), token.as_bytes()));
        let caller = if operator {
            Caller::Operator
        } else {
            count()?;
            user_token(&state, token).await?
        };
        req.extensions_mut().insert(caller);
        return next.call(req).await;
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(timestamp), Some(signature)) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER)) else {
        count()?;
        return Err(ApiError::Unauthorized(
            "authentication required: send Authorization: Bearer <token>, or X-Kiln-Timestamp and X-Kiln-Signature"
                .into(),
        )
        .into());
    };
    let body = read_body(&mut req, state.settings.max_body_bytes).await?;
    let secret = state
        .settings
        .hmac_secret
        .as_ref()
        .expect("the API requires KILN_HMAC_SECRET");
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    signing::verify_request(
        secret.expose_secret().as_bytes(),
        &timestamp,
        &signature,
        req.method().as_str(),
        &path_and_query,
        &body,
        chrono::Utc::now().timestamp(),
    )
    .map_err(|e| match count() {
        Ok(()) => ApiError::Unauthorized(e.to_string()),
        Err(limited) => limited,
    })?;
    req.set_payload(Payload::from(body.freeze()));
    req.extensions_mut().insert(Caller::Backend);
    next.call(req).await
}

/// A user token, looked up by its hash (unrevoked only).
async fn user_token(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let invalid = || ApiError::Unauthorized("the bearer token is not valid".into());
    if !token.starts_with(kiln_shared::db::tokens::PREFIX) {
        return Err(invalid());
    }
    let hash = kiln_shared::store::sha256_hex(token.as_bytes());
    let (token_id, user) = kiln_shared::db::tokens::find_live(&state.db, &hash)
        .await?
        .ok_or_else(invalid)?;
    let user_id = UserId::parse(&user).map_err(ApiError::internal)?;
    Ok(Caller::User { user_id, token_id })
}

/// Who is calling, as [`authenticate`] found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An operator token: everything.
    Operator,
    /// The product back end (an HMAC signature): everything.
    Backend,
    /// A user token: that user's projects, builds and webhooks.
    User { user_id: UserId, token_id: String },
}

impl Caller {
    /// The user a user token is limited to; `None` for the operator and the back end.
    pub fn user(&self) -> Option<&UserId> {
        match self {
            Caller::User { user_id, .. } => Some(user_id),
            Caller::Operator | Caller::Backend => None,
        }
    }

    /// Whether the caller may see `user`'s projects and builds.
    pub fn sees(&self, user: &UserId) -> bool {
        self.user().is_none_or(|own| own == user)
    }

    /// `Ok` when the caller may see `user`'s things, else the 404 `missing` makes (the same
    /// answer as for something that does not exist).
    pub fn check(&self, user: &UserId, missing: impl FnOnce() -> ApiError) -> Result<(), ApiError> {
        if self.sees(user) {
            Ok(())
        } else {
            Err(missing())
        }
    }

    /// Routes for the operator and the back end only (the fleet, metrics, token creation):
    /// for a user token they do not exist.
    pub fn require_privileged(&self) -> Result<(), ApiError> {
        match self {
            Caller::User { .. } => Err(ApiError::NotFound("no such route; see /openapi.json".into())),
            Caller::Operator | Caller::Backend => Ok(()),
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(req.extensions().get::<Caller>().cloned().ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "a handler that needs a Caller runs without authenticate"
            ))
        }))
    }
}

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not valid text".into()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::Unauthorized(
            "the Authorization header must be: Bearer <token>".into(),
        )),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the request body is larger than {} MB",
        limit / (1024 * 1024)
    ))
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes.
async fn read_body(req: &mut ServiceRequest, limit: usize) -> Result<BytesMut, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let mut payload = req.take_payload();
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
