//! `GET /v1/builders` (the live fleet) and `GET /v1/builders/history` (uptime intervals).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::parse::{limit, query};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/builders", web::get().to(live))
        .route("/builders/history", web::get().to(history));
}

/// Every builder that heartbeated within the lease, with what it runs.
async fn live(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    let builders = state.fleet.live().await.map_err(|e| ApiError::Unavailable {
        what: "the fleet registry (Redis)",
        cause: e.into(),
    })?;
    let slots: u64 = builders
        .iter()
        .filter_map(|b| b.report["capacity"].as_u64())
        .sum();
    let running: usize = builders
        .iter()
        .filter_map(|b| b.report["running"].as_array().map(Vec::len))
        .sum();
    let views: Vec<serde_json::Value> = builders
        .into_iter()
        .map(|b| {
            let mut view = serde_json::json!({ "id": b.id, "lastSeenMsAgo": b.seen_ms_ago });
            if let (Some(view), Some(report)) = (view.as_object_mut(), b.report.as_object()) {
                for (k, v) in report {
                    view.insert(k.clone(), v.clone());
                }
            }
            view
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "builders": views,
        "slots": slots,
        "running": running,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HistoryQuery {
    builder_id: Option<String>,
    limit: Option<i64>,
}

/// Uptime intervals, newest first (an interval closes after a 30-minute gap in heartbeats).
async fn history(
    caller: Caller,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    let q: HistoryQuery = query(&req)?;
    if q.builder_id
        .as_ref()
        .is_some_and(|b| b.is_empty() || b.len() > 200)
    {
        return Err(ApiError::BadRequest("builderId must be 1-200 characters".into()));
    }
    let intervals =
        kiln_shared::db::fleet::history(&state.db, q.builder_id.as_deref(), limit(q.limit)?).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "intervals": intervals })))
}
