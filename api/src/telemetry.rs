//! What operators see of each request on both listeners: its `X-Request-Id` (the client's when
//! it sent a sane one, else a new ULID), recorded as `request_id` in the request's root span
//! ([`ApiSpan`], [`PreviewSpan`] for `tracing-actix-web`) and sent back on every answer; and its
//! count and latency in the per-route HTTP metrics ([`observe_api`], [`observe_preview`]).
//!
//! Latency runs from the request's arrival to its response head: an event or log stream, an
//! export or a preview file counts the time until its first byte can be sent, not the minutes
//! its body may stream.

use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};
use kiln_shared::metrics::http::{PREVIEW, UNMATCHED};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};

use crate::state::AppState;

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest id taken from a client; a longer one is replaced.
pub const MAX_REQUEST_ID: usize = 128;

/// A request's id (a request extension, set when its root span starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The client's `X-Request-Id` when it is sane (1 to [`MAX_REQUEST_ID`] visible ASCII
    /// characters, so that it can be logged and echoed as it is), else a new ULID.
    fn of(req: &ServiceRequest) -> Self {
        let given = req
            .headers()
            .get(&REQUEST_ID)
            .map(HeaderValue::as_bytes)
            .filter(|v| is_sane(v));
        match given {
            Some(v) => Self(String::from_utf8_lossy(v).into_owned()),
            None => Self(ulid::Ulid::new().to_string()),
        }
    }

    /// The request's id: the one its root span recorded, found anew if it has none.
    fn assigned(req: &ServiceRequest) -> Self {
        if let Some(id) = req.extensions().get::<RequestId>() {
            return id.clone();
        }
        let id = Self::of(req);
        req.extensions_mut().insert(id.clone());
        id
    }
}

fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len()) && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// The root span of an API request: `tracing-actix-web`'s fields, with the route's pattern
/// (`unmatched` when none) and our `request_id`.
pub struct ApiSpan;

impl RootSpanBuilder for ApiSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        request_span(request, &api_route(request))
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// The root span of a preview request (its route is `preview`).
pub struct PreviewSpan;

impl RootSpanBuilder for PreviewSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        request_span(request, PREVIEW)
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

fn request_span(request: &ServiceRequest, route: &str) -> Span {
    let id = RequestId::assigned(request);
    let user_agent = request
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let target = request.uri().path_and_query().map_or("", |p| p.as_str());
    tracing::info_span!(
        "HTTP request",
        http.method = %request.method(),
        http.route = %route,
        http.target = %target,
        http.client_ip = %request.connection_info().realip_remote_addr().unwrap_or(""),
        http.user_agent = %user_agent,
        http.status_code = tracing::field::Empty,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        request_id = %id.0,
        exception.message = tracing::field::Empty,
        exception.details = tracing::field::Empty,
    )
}

/// The `route` label of an API request: its matched pattern, or `unmatched`.
fn api_route(req: &ServiceRequest) -> String {
    req.match_pattern().unwrap_or_else(|| UNMATCHED.to_owned())
}

/// The API listener's outermost middleware (inside the tracing span): counts and times every
/// answer under its route's pattern and sends its `X-Request-Id`.
pub async fn observe_api(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let route = api_route(&req);
    observe(req, next, route).await
}

/// As [`observe_api`], for the preview listener (one `preview` route).
pub async fn observe_preview(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    observe(req, next, PREVIEW.to_owned()).await
}

async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    route: String,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let id = RequestId::assigned(&req);
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.metrics.clone());
    let method = req.method().clone();
    let id_value = HeaderValue::from_str(&id.0).ok();
    let record = |status: StatusCode| {
        if let Some(metrics) = &metrics {
            let took: Duration = started.elapsed();
            metrics.http_request(&route, method.as_str(), status.as_u16(), took);
        }
    };
    match next.call(req).await {
        Ok(res) => {
            let mut res = res.map_into_boxed_body();
            if let Some(value) = id_value {
                res.headers_mut().insert(REQUEST_ID, value);
            }
            record(res.status());
            Ok(res)
        }
        // A middleware's refusal (the request is gone with it): its answer is made here, as
        // actix-web would make it later, so that it carries the id too.
        Err(e) => {
            let mut answer = e.error_response();
            if let Some(value) = id_value {
                answer.headers_mut().insert(REQUEST_ID, value);
            }
            record(answer.status());
            Err(InternalError::from_response(e.to_string(), answer).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bounded_visible_ascii_ids_are_taken() {
        assert!(is_sane(b"01HZX3J5R2N8V6Q4T7W9Y0ABCD"));
        assert!(is_sane(b"req-42_abc.DEF:1/2"));
        assert!(is_sane(&[b'a'; MAX_REQUEST_ID]));
        assert!(!is_sane(&[b'a'; MAX_REQUEST_ID + 1]));
        assert!(!is_sane(b""));
        assert!(!is_sane(b"with space"));
        assert!(!is_sane(b"tab\there"));
        assert!(!is_sane(b"bell\x07"));
        assert!(!is_sane("caf\u{e9}".as_bytes()));
    }
}
