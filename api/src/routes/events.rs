//! `GET /v1/builds/{id}/events` (polling) and `GET /v1/builds/{id}/events/stream` (SSE).

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use kiln_shared::db::events;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};

use super::builds::visible_build;
use super::parse::{query, query_str};
use super::serve;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::events::{self as live, StreamTiming};
use crate::guard::ClientIp;
use crate::limits::StreamPermit;
use crate::problem::Problem;
use crate::state::AppState;
use crate::views::schemas::BuildEventSchema;
use crate::views::sorted;

/// How often an idle stream sends a comment line (and re-reads Postgres).
pub(super) const HEARTBEAT: Duration = Duration::from_secs(15);

pub fn configure(cfg: &mut web::ServiceConfig) {
    serve::<__path_poll, _, _>(cfg, "/v1", poll);
    serve::<__path_stream, _, _>(cfg, "/v1", stream);
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PollQuery {
    /// Only the events after this id (default 0).
    after: Option<i64>,
    /// 1-1000, default 100.
    limit: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// Replay the events after this id (`Last-Event-ID` wins over it).
    after: Option<i64>,
}

/// `GET /v1/builds/{id}/events`' answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    #[schema(value_type = String)]
    build_id: kiln_shared::domain::VersionId,
    #[schema(value_type = Vec<BuildEventSchema>)]
    events: Vec<events::BuildEvent>,
    /// The last event's id (`after` when there is none): `after` of the next poll.
    last_event_id: i32,
}

fn after_value(raw: Option<i64>, what: &str) -> Result<i32, ApiError> {
    match raw {
        None => Ok(0),
        Some(n) => i32::try_from(n)
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::BadRequest(format!("{what} must be an event id (0 or more), got {n}"))),
    }
}

/// A build's events
///
/// The events after `after`, oldest first, at most `limit`.
#[utoipa::path(
    get,
    operation_id = "listBuildEvents",
    path = "/v1/builds/{id}/events",
    tag = "builds",
    params(("id" = String, Path, description = "The build's id"), PollQuery),
    responses(
        (status = 200, description = "Events", body = EventPage),
        (status = 404, description = "Unknown build", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn poll(
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (after, limit) = poll_params(req.query_string())?;
    let id = visible_build(&state, &caller, &path).await?;
    let page = events::after(&state.db, id, after, limit).await?;
    let last = page.last().map_or(after, |e| e.id);
    Ok(sorted(
        StatusCode::OK,
        &EventPage {
            build_id: id,
            events: page,
            last_event_id: last,
        },
    ))
}

/// `GET .../events`' query: the event id to start after, and the page size.
pub(crate) fn poll_params(raw: &str) -> Result<(i32, i64), ApiError> {
    let q: PollQuery = query_str(raw)?;
    let after = after_value(q.after, "after")?;
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n,
        Some(n) => return Err(ApiError::BadRequest(format!("limit must be 1-1000, got {n}"))),
    };
    Ok((after, limit))
}

/// Follow a build's events
///
/// Server-Sent Events: replays the events after `Last-Event-ID` (or `after`), then streams live
/// ones (`id` = event id, `event` = its type, `data` = the event); ends after the final event;
/// a comment line every 15 s when idle.
#[utoipa::path(
    get,
    operation_id = "streamBuildEvents",
    path = "/v1/builds/{id}/events/stream",
    tag = "builds",
    params(
        ("id" = String, Path, description = "The build's id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id (a reconnecting EventSource sends it)"),
        StreamQuery,
    ),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 404, description = "Unknown build", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "KILN_MAX_STREAMS_PER_CLIENT event and log streams are already open from this client address (`too_many_streams`, user tokens), or the per-IP rate limit", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn stream(
    caller: Caller,
    ip: ClientIp,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q: StreamQuery = query(&req)?;
    let after = after_value(resume_point(&req)?.or(q.after), "after")?;
    let id = visible_build(&state, &caller, &path).await?;
    let permit = state.limits.open_stream(&caller, ip.0)?;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(live::stream(
        state.db.clone(),
        state.hub.clone(),
        id,
        after,
        StreamTiming { heartbeat: HEARTBEAT },
        tx,
    ));
    Ok(sse_response(rx, state.closing.clone(), permit))
}

/// The `Last-Event-ID` header a reconnecting EventSource sends (it wins over `?after=`).
pub(super) fn resume_point(req: &HttpRequest) -> Result<Option<i64>, ApiError> {
    req.headers()
        .get("last-event-id")
        .map(|v| last_event_id(v.as_bytes()))
        .transpose()
}

/// A `Last-Event-ID` header's value: an event id or a log line number.
pub(crate) fn last_event_id(value: &[u8]) -> Result<i64, ApiError> {
    let text = std::str::from_utf8(value)
        .map_err(|_| ApiError::BadRequest("Last-Event-ID must be a number".into()))?;
    text.trim().parse::<i64>().map_err(|_| {
        let shown: String = text.chars().take(40).collect();
        ApiError::BadRequest(format!("Last-Event-ID must be a number, got {shown:?}"))
    })
}

/// The last message of a stream the API closes because it is shutting down: the client
/// reconnects (to another instance) after a second, resuming from its `Last-Event-ID`.
const CLOSING: &[u8] = b"retry: 1000\n: kiln-api is shutting down; reconnect to resume\n\n";

/// A `text/event-stream` answer that sends what `rx` gives until it closes, or until the API
/// shuts down (`closing`): then it says so and ends cleanly, so that a graceful stop does not
/// wait on streams that would never end by themselves. The stream's `permit` (its place under
/// `KILN_MAX_STREAMS_PER_CLIENT`) is given back when the body ends or is dropped (the client
/// went away).
pub(super) fn sse_response(
    rx: mpsc::Receiver<Bytes>,
    closing: CancellationToken,
    permit: Option<StreamPermit>,
) -> HttpResponse {
    let body = futures::stream::unfold(Some((rx, closing, permit)), |open| async move {
        let (mut rx, closing, permit) = open?;
        tokio::select! {
            biased;
            () = closing.cancelled() => Some((Ok(Bytes::from_static(CLOSING)), None)),
            b = rx.recv() => b.map(|b| (Ok::<_, actix_web::Error>(b), Some((rx, closing, permit)))),
        }
    });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}
