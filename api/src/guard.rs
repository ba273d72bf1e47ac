//! The extractors and the middleware every API request passes through before its route:
//! [`guard`] finds the client's address ([`ClientIp`]), holds the request to the caps of its
//! head and of the time its body may take, and gives every refusal a problem+json answer
//! (including the ones actix-web makes by itself); [`Public`] counts a public route's request against its
//! client's per-IP allowance ([`crate::limits`]).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use bytes::Bytes;
use futures::StreamExt;

use crate::caller::Caller;
use crate::error::ApiError;
use crate::limits::Limits;
use crate::state::AppState;

/// The client's address as [`guard`] found it (a request extension, also an extractor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The client address [`guard`] found for `req` (found again by `limits` if it has not run).
    pub fn of(req: &HttpRequest, limits: &Limits) -> IpAddr {
        match req.extensions().get::<ClientIp>() {
            Some(ip) => ip.0,
            None => limits.client_ip(req.peer_addr().map(|a| a.ip()), req.headers()),
        }
    }
}

impl FromRequest for ClientIp {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(req.extensions().get::<ClientIp>().copied().ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "a handler that needs a ClientIp runs without guard"
            ))
        }))
    }
}

/// An extractor for public routes: counts the request against its client's per-IP allowance
/// (unless an authenticated caller's was already counted, or is exempt).
pub struct Public;

impl FromRequest for Public {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if req.extensions().get::<Caller>().is_some() {
            return std::future::ready(Ok(Public));
        }
        let state = req
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered");
        let ip = ClientIp::of(req, &state.limits);
        std::future::ready(state.limits.check_ip(ip).map(|()| Public))
    }
}

/// Every API request passes through here first: its client address is found, its head is
/// held to `KILN_MAX_HEADER_KB`, its body to `KILN_REQUEST_BODY_TIMEOUT_SECS`, and any refusal
/// that is not a problem yet (actix-web's own: a payload over the cap, a wrong method) becomes
/// one ([`ApiError::of_status`]).
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone();
    let settings = &state.settings.limits;
    let ip = state
        .limits
        .client_ip(req.peer_addr().map(|a| a.ip()), req.headers());
    req.extensions_mut().insert(ClientIp(ip));

    let head = head_size(&req);
    if head > settings.max_header_bytes {
        let err = ApiError::HeadersTooLarge(format!(
            "the request line and headers are {head} bytes; the limit is {} KB",
            settings.max_header_bytes / 1024
        ));
        return Ok(req.error_response(err));
    }

    let timed_out = Arc::new(AtomicBool::new(false));
    if has_body(req.headers()) {
        let payload = deadline(req.take_payload(), settings.body_timeout, timed_out.clone());
        req.set_payload(payload);
    }
    let res = next.call(req).await?;
    if timed_out.load(Ordering::Relaxed) {
        let err = ApiError::RequestTimeout(format!(
            "the request body did not arrive within {} s",
            settings.body_timeout.as_secs()
        ));
        let (req, _) = res.into_parts();
        return Ok(ServiceResponse::new(
            req,
            actix_web::ResponseError::error_response(&err),
        ));
    }
    Ok(as_problem(
        res.map_into_boxed_body(),
        state.settings.api.max_body_bytes,
    ))
}

/// The request line and headers, counted as they are sent (`name: value\r\n`).
fn head_size(req: &ServiceRequest) -> usize {
    let line = req.method().as_str().len() + req.uri().path().len() + req.query_string().len() + 12;
    req.headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + line
}

fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.to_str().map_or(true, |v| v.trim() != "0"))
}

/// The body, cut off with an error once `timeout` has passed since the request's head arrived.
fn deadline(payload: Payload, timeout: Duration, timed_out: Arc<AtomicBool>) -> Payload {
    let sleep = Box::pin(tokio::time::sleep(timeout));
    let stream = futures::stream::unfold(Some((payload, sleep)), move |open| {
        let timed_out = timed_out.clone();
        async move {
            let (mut payload, mut sleep) = open?;
            tokio::select! {
                chunk = payload.next() => chunk.map(|c| (c, Some((payload, sleep)))),
                () = sleep.as_mut() => {
                    timed_out.store(true, Ordering::Relaxed);
                    let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "the request body took too long");
                    Some((Err(PayloadError::Io(e)), None))
                }
            }
        }
    });
    let boxed: std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(stream);
    Payload::from(boxed)
}

/// An error answer that is not a problem (actix-web's own) as one, saying what is wrong.
fn as_problem(res: ServiceResponse<BoxBody>, max_body: usize) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(crate::problem::CONTENT_TYPE) || v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let message = match res.response().error() {
        // The body extractor's cap (`KILN_MAX_BODY_MB`), said as the signed path says it.
        _ if status == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the request body is larger than {} MB", max_body / (1024 * 1024))
        }
        Some(e) if !e.to_string().is_empty() => e.to_string(),
        _ => status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_ascii_lowercase(),
    };
    let (req, old) = res.into_parts();
    let mut new = actix_web::ResponseError::error_response(&ApiError::of_status(status, message));
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    ServiceResponse::new(req, new)
}
