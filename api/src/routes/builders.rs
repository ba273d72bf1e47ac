//! `GET /v1/builders` (the live fleet) and `GET /v1/builders/history` (uptime intervals).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::parse::{limit, query};
use super::serve;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::problem::Problem;
use crate::state::AppState;
use crate::views::schemas::UptimeSchema;
use crate::views::sorted;

pub fn configure(cfg: &mut web::ServiceConfig) {
    serve::<__path_live, _, _>(cfg, "/v1", live);
    serve::<__path_history, _, _>(cfg, "/v1", history);
}

/// `GET /v1/builders`' answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Fleet {
    builders: Vec<LiveBuilderView>,
    /// Builds running on the live builders.
    running: usize,
    /// The live builders' capacity, summed.
    slots: u64,
}

/// A live builder: its id, when it was last seen, and what its heartbeat reports.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = LiveBuilder)]
pub struct LiveBuilderView {
    id: String,
    /// How long ago (by Redis's clock) it last heartbeated.
    last_seen_ms_ago: i64,
    /// The builder's own report: `host`, `version`, `capacity`, `running` (`[{buildId,
    /// lastEvent}]`), `node`, `pnpm`, `startedAt`, `draining`, `storeBytes`, `metricsAddr`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    report: serde_json::Map<String, serde_json::Value>,
}

/// `GET /v1/builders/history`' answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    #[schema(value_type = Vec<UptimeSchema>)]
    intervals: Vec<kiln_shared::db::fleet::Uptime>,
}

/// The live fleet
///
/// Every builder that heartbeated within the lease, with its capacity, running builds and their
/// newest event, and versions.
#[utoipa::path(
    get,
    operation_id = "listBuilders",
    path = "/v1/builders",
    tag = "fleet",
    responses(
        (status = 200, description = "The live fleet", body = Fleet),
        (status = 404, description = "A user token (operators and the back end only)", body = Problem, content_type = "application/problem+json"),
    ),
)]
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
    let views: Vec<LiveBuilderView> = builders
        .into_iter()
        .map(|b| LiveBuilderView {
            id: b.id,
            last_seen_ms_ago: b.seen_ms_ago,
            report: b.report.as_object().cloned().unwrap_or_default(),
        })
        .collect();
    Ok(sorted(
        StatusCode::OK,
        &Fleet {
            builders: views,
            running,
            slots,
        },
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Only this builder's intervals (1-200 characters).
    builder_id: Option<String>,
    /// 1-100, default 20.
    limit: Option<i64>,
}

/// Builders' uptime
///
/// Uptime intervals, newest first (an interval closes after a 30-minute gap in heartbeats).
#[utoipa::path(
    get,
    operation_id = "builderHistory",
    path = "/v1/builders/history",
    tag = "fleet",
    params(HistoryQuery),
    responses(
        (status = 200, description = "Uptime intervals", body = History),
        (status = 404, description = "A user token (operators and the back end only)", body = Problem, content_type = "application/problem+json"),
    ),
)]
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
    Ok(sorted(StatusCode::OK, &History { intervals }))
}
