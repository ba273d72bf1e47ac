//! Authentication of `/v1` routes and the seed aliases, and who the caller is ([`Caller`]):
//!
//! - an operator token (`KILN_API_TOKENS`) or the product back end's HMAC signature over
//!   `{timestamp}.{METHOD}.{path_and_query}.{body}`: everything;
//! - a user token (`POST /v1/tokens`, `kiln_ut_…`, looked up by its SHA-256): its own user's
//!   projects, builds and webhooks only. Anything else answers 404, exactly as if it did not
//!   exist, so a user token does not even learn that another user's project exists.
//!
//! The body of a signed request is read here, once, under the size cap, and handed on. A
//! signature that changes something is accepted once ([`refuse_replays`]): recorded here, or,
//! behind [`authenticate_admission`] (the routes that admit builds), by admission itself in its
//! first Redis round trip, before anything is stored. Credentials
//! anywhere else (the query string, a cookie, another header) are refused with a 401 that says
//! where they go.
//!
//! The per-IP limit ([`crate::limits`]) is counted here, before anything costly: for a user
//! token (before its lookup), a refused credential, or no credentials at all. An operator token
//! and a valid signature are not counted.

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH, COOKIE};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use bytes::BytesMut;
use futures::StreamExt;
use kiln_shared::domain::UserId;
use kiln_shared::signing::{
    self, SignedHeaders, IDEMPOTENCY_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use secrecy::ExposeSecret;

use crate::caller::{refuse_replays, Caller, UnrecordedSignature};
use crate::error::ApiError;
use crate::guard::ClientIp;
use crate::state::AppState;

/// The middleware of every authenticated route but admission's: a signature that changes
/// something is recorded here, and refused if it was used before.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    authenticate_as(req, next, Signatures::Recorded).await
}

/// The middleware of the routes that admit builds (`POST /v1/builds` and the seed's aliases):
/// the signature of a `POST` is handed on unrecorded ([`UnrecordedSignature`]), and admission
/// records it in its first Redis round trip. Any other method is [`authenticate`]d as usual.
pub async fn authenticate_admission(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    authenticate_as(req, next, Signatures::LeftToAdmission).await
}

/// Who records the use of a verified signature that changes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signatures {
    /// The middleware, before the handler runs.
    Recorded,
    /// Admission, for a `POST`; the middleware for any other method.
    LeftToAdmission,
}

async fn authenticate_as(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
    signatures: Signatures,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone();
    let ip = ClientIp::of(req.request(), &state.limits);
    // A refused request counts against its address; once the allowance is used up the answer
    // is the 429 instead.
    let counted = |e: ApiError| match state.limits.check_ip(ip) {
        Ok(()) => e,
        Err(limited) => limited,
    };
    refuse_credentials_in_the_query(req.query_string()).map_err(counted)?;
    if let Some(token) = bearer(req.headers()).map_err(counted)? {
        let operator = state
            .settings
            .api
            .tokens
            .iter()
            .any(|t| signing::secrets_equal(t.expose_secret().as_bytes(), token.as_bytes()));
        let caller = if operator {
            Caller::Operator
        } else {
            state.limits.check_ip(ip)?;
            user_token(&state, token).await?
        };
        req.extensions_mut().insert(caller);
        return next.call(req).await;
    }
    let timestamp = single_header(req.headers(), TIMESTAMP_HEADER).map_err(counted)?;
    let signature = single_header(req.headers(), SIGNATURE_HEADER).map_err(counted)?;
    let nonce = single_header(req.headers(), NONCE_HEADER)
        .map_err(counted)?
        .map(str::to_owned);
    let (timestamp, signature) =
        match (timestamp, signature) {
            (Some(t), Some(s)) => (t.to_owned(), s.to_owned()),
            (None, Some(_)) => return Err(counted(unauthorized(
                "authentication required: X-Kiln-Signature needs X-Kiln-Timestamp (the unix time it signs)",
            ))
            .into()),
            (Some(_), None) => {
                return Err(counted(unauthorized(
                    "authentication required: X-Kiln-Timestamp needs X-Kiln-Signature",
                ))
                .into())
            }
            (None, None) => return Err(counted(missing_credentials(req.headers())).into()),
        };
    let body = read_body(&mut req, state.settings.api.max_body_bytes).await?;
    let secret = state
        .settings
        .api
        .hmac_secret
        .as_ref()
        .expect("the API requires KILN_HMAC_SECRET");
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let headers = SignedHeaders {
        timestamp: &timestamp,
        signature: &signature,
        nonce: nonce.as_deref(),
    };
    let verified = signing::verify(
        secret.expose_secret().as_bytes(),
        headers,
        req.method().as_str(),
        &path_and_query,
        &body,
        chrono::Utc::now().timestamp(),
    )
    .map_err(|e| counted(ApiError::Unauthorized(e.to_string())))?;
    if !req.method().is_safe() {
        let idempotency_key = req
            .headers()
            .get(IDEMPOTENCY_HEADER)
            .and_then(|v| v.to_str().ok());
        let record = state
            .signatures
            .record_of(&verified.mac, idempotency_key, verified.acceptable_for);
        let admits =
            signatures == Signatures::LeftToAdmission && req.method() == actix_web::http::Method::POST;
        if admits {
            // Admission records it in its first Redis round trip, before anything is stored.
            req.extensions_mut().insert(UnrecordedSignature(record));
        } else {
            refuse_replays(state.signatures.record(&record).await.map_err(ApiError::from)?)?;
        }
    }
    req.set_payload(Payload::from(body.freeze()));
    req.extensions_mut().insert(Caller::Backend);
    next.call(req).await
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::Unauthorized(message.to_owned())
}

/// Query parameters that look like credentials: a token or signature in a URL ends up in
/// access logs, proxies and browser history, so such a request is refused whatever else it
/// carries.
const QUERY_CREDENTIALS: &[&str] = &[
    "access_token",
    "api_key",
    "apikey",
    "auth",
    "authorization",
    "bearer",
    "hmac",
    "kiln_token",
    "password",
    "secret",
    "sig",
    "signature",
    "token",
    "x-kiln-signature",
    "x-kiln-timestamp",
];

fn refuse_credentials_in_the_query(query: &str) -> Result<(), ApiError> {
    if query.is_empty() {
        return Ok(());
    }
    let found = url::form_urlencoded::parse(query.as_bytes())
        .map(|(name, _)| name.to_ascii_lowercase())
        .find(|name| QUERY_CREDENTIALS.contains(&name.as_str()));
    match found {
        Some(name) => Err(ApiError::Unauthorized(format!(
            "credentials are not accepted in the query string ({name}=...: URLs are logged); send Authorization: Bearer <token>, or X-Kiln-Timestamp and X-Kiln-Signature"
        ))),
        None => Ok(()),
    }
}

/// Headers where other services take credentials, which Kiln does not read.
const OTHER_CREDENTIAL_HEADERS: &[&str] = &[
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-access-token",
    "x-kiln-token",
    "proxy-authorization",
];

/// The 401 of a request with no credentials Kiln reads, naming what it sent instead.
fn missing_credentials(headers: &HeaderMap) -> ApiError {
    const HOW: &str = "send Authorization: Bearer <token>, or X-Kiln-Timestamp and X-Kiln-Signature";
    if let Some(name) = OTHER_CREDENTIAL_HEADERS
        .iter()
        .find(|h| headers.contains_key(**h))
    {
        return ApiError::Unauthorized(format!(
            "authentication required: {name} is not read by Kiln; {HOW}"
        ));
    }
    if headers.contains_key(COOKIE) {
        return ApiError::Unauthorized(format!(
            "authentication required: cookies are not used for authentication; {HOW}"
        ));
    }
    ApiError::Unauthorized(format!("authentication required: {HOW}"))
}

/// A header that may be sent once: `None` when absent; a 401 when it is sent twice (which of
/// two credentials would count is a question nobody should have to answer) or is not text.
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ApiError> {
    let mut values = headers.get_all(name);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::Unauthorized(format!(
            "the {name} header is sent more than once; send it once"
        )));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| ApiError::Unauthorized(format!("the {name} header is not valid text")))
}

/// A user token, looked up by its hash (unrevoked only).
async fn user_token(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let invalid = || ApiError::Unauthorized("the bearer token is not valid".into());
    // Only the shape of a user token is looked up: junk costs no query.
    let well_formed = token
        .strip_prefix(kiln_shared::db::tokens::PREFIX)
        .is_some_and(|rest| rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()));
    if !well_formed {
        return Err(invalid());
    }
    let hash = kiln_shared::store::sha256_hex(token.as_bytes());
    let (token_id, user) = kiln_shared::db::tokens::find_live(&state.db, &hash)
        .await?
        .ok_or_else(invalid)?;
    let user_id = UserId::parse(&user).map_err(ApiError::internal)?;
    Ok(Caller::User { user_id, token_id })
}

/// The bearer token of `Authorization: Bearer <token>`, if the header is there.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = single_header(headers, AUTHORIZATION.as_str())? else {
        return Ok(None);
    };
    match value.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        Some((scheme, _)) if !scheme.eq_ignore_ascii_case("bearer") => Err(ApiError::Unauthorized(format!(
            "the {} authentication scheme is not accepted; the Authorization header must be: Bearer <token>",
            scheme.chars().take(20).collect::<String>()
        ))),
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
