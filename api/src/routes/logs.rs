//! `GET /v1/builds/{id}/logs`: the whole log as text, or `?follow=true` as Server-Sent Events.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::mpsc;
use utoipa::IntoParams;

use super::builds::visible_build;
use super::events::{resume_point, sse_response, HEARTBEAT};
use super::parse::query_str;
use super::serve;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::guard::ClientIp;
use crate::logs;
use crate::problem::Problem;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    serve::<__path_get, _, _>(cfg, "/v1", get);
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct LogQuery {
    /// Stream the log as Server-Sent Events (`id` = line number), resuming after
    /// `Last-Event-ID`, ending with `event: end`.
    follow: Option<bool>,
    /// Only the lines after this line number.
    after: Option<i64>,
}

/// `GET .../logs`' query and `Last-Event-ID`: whether to follow, and the line to start after.
pub(crate) fn log_params(raw: &str, last_event_id: Option<i64>) -> Result<(bool, u64), ApiError> {
    let q: LogQuery = query_str(raw)?;
    let follow = q.follow.unwrap_or(false);
    let raw_after = if follow {
        last_event_id.or(q.after)
    } else {
        q.after
    };
    let after = match raw_after {
        None => 0,
        Some(n) => u64::try_from(n)
            .map_err(|_| ApiError::BadRequest(format!("after must be a line number (0 or more), got {n}")))?,
    };
    Ok((follow, after))
}

/// A build's log
///
/// The build's log (capped, secrets redacted) as text after line `after`; with `follow=true`,
/// as Server-Sent Events.
#[utoipa::path(
    get,
    operation_id = "getBuildLog",
    path = "/v1/builds/{id}/logs",
    tag = "builds",
    params(
        ("id" = String, Path, description = "The build's id"),
        ("Last-Event-ID" = Option<String>, Header, description = "With follow=true: resume after this line"),
        LogQuery,
    ),
    responses(
        (status = 200, description = "The log as text (`X-Kiln-Log-Last-Line`: the last line's number, `X-Kiln-Log-Complete`: whether the build ended), or with follow=true its stream",
            content((String = "text/plain; charset=utf-8"), (String = "text/event-stream")),
            headers(("X-Kiln-Log-Last-Line" = u64, description = "The last line's number"), ("X-Kiln-Log-Complete" = bool, description = "The build ended: no line will follow"))),
        (status = 404, description = "Unknown build", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "KILN_MAX_STREAMS_PER_CLIENT event and log streams are already open from this client address (`too_many_streams`, user tokens), or the per-IP rate limit", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn get(
    caller: Caller,
    ip: ClientIp,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (follow, after) = log_params(req.query_string(), resume_point(&req)?)?;
    if follow {
        let id = visible_build(&state, &caller, &path).await?;
        let permit = state.limits.open_stream(&caller, ip.0)?;
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        tokio::spawn(logs::follow(state.get_ref().clone(), id, after, HEARTBEAT, tx));
        return Ok(sse_response(rx, state.closing.clone(), permit));
    }
    let log = logs::so_far(&state, visible_build(&state, &caller, &path).await?, after).await?;
    let last = log.lines.last().map_or(after, |(n, _)| *n);
    let mut text = String::new();
    for (_, line) in &log.lines {
        text.push_str(line);
        text.push('\n');
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"))
        .insert_header(("X-Kiln-Log-Last-Line", last.to_string()))
        .insert_header(("X-Kiln-Log-Complete", log.complete.to_string()))
        .body(text))
}
