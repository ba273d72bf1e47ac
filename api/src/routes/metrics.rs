//! `GET /metrics`: this API process's counters and the farm-wide gauges, in Prometheus' text
//! format. It needs an operator token (`KILN_API_TOKENS`) like every `/v1` route: give
//! Prometheus one with `authorization: { credentials_file: ... }` (see `deploy/prometheus/`).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use kiln_shared::db::versions;
use kiln_shared::metrics::{FarmGauges, CONTENT_TYPE};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::problem::Problem;
use crate::state::AppState;

/// A scrape never waits longer than this for Postgres and Redis; the process's own counters
/// are answered regardless.
const FARM_TIMEOUT: Duration = Duration::from_secs(2);

/// Prometheus metrics
///
/// This API process's counters and the farm-wide gauges, in Prometheus' text format (operator
/// or back end only).
#[utoipa::path(
    get,
    operation_id = "metrics",
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text", content_type = "text/plain; version=0.0.4", body = String),
        (status = 404, description = "A user token (the route is not theirs)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn metrics(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    match tokio::time::timeout(FARM_TIMEOUT, farm(&state)).await {
        Ok(Ok(gauges)) => state.metrics.set_farm(&gauges),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: cannot read the farm-wide gauges");
            state.metrics.farm_unreadable();
        }
        Err(_) => {
            tracing::warn!("metrics: the farm-wide gauges took too long to read");
            state.metrics.farm_unreadable();
        }
    }
    Ok(HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .body(state.metrics.encode()))
}

/// Builds queued and running and the oldest waiting one (Postgres), the stream's length and the
/// live fleet (Redis), read together.
async fn farm(state: &AppState) -> anyhow::Result<FarmGauges> {
    let (active, stream_length, fleet) = tokio::join!(
        versions::active_builds(&state.db),
        state.queue.depth(),
        state.fleet.capacity()
    );
    let (active, fleet) = (active?, fleet?);
    Ok(FarmGauges {
        queued: active.queued,
        running: active.running,
        oldest_queued_secs: active.oldest_queued_secs,
        stream_length: stream_length?,
        live_builders: fleet.builders,
        fleet_slots: fleet.slots,
    })
}
