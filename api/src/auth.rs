//! Authentication of `/v1` routes and the seed aliases: a bearer token (operators, the CLI) or
//! the product back end's HMAC signature over `{timestamp}.{METHOD}.{path_and_query}.{body}`.
//! The body is read here, once, under the size cap, and handed on to the handler.

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use bytes::BytesMut;
use futures::StreamExt;
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
    if let Some(token) = bearer(req.headers())? {
        let known = state
            .settings
            .api_tokens
            .iter()
            .any(|t| signing::secrets_equal(t.expose_secret().as_bytes(), token.as_bytes()));
        if !known {
            return Err(ApiError::Unauthorized("the bearer token is not valid".into()).into());
        }
        return next.call(req).await;
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(timestamp), Some(signature)) = (header(TIMESTAMP_HEADER), header(SIGNATURE_HEADER)) else {
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
    .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    req.set_payload(Payload::from(body.freeze()));
    next.call(req).await
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
