//! `GET /v1/builds/{id}/logs`: the whole log as text, or `?follow=true` as Server-Sent Events.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::builds::visible_build;
use super::events::{resume_point, sse_response, HEARTBEAT};
use super::parse::query_str;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::guard::ClientIp;
use crate::logs;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/builds/{id}/logs", web::get().to(get));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
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
