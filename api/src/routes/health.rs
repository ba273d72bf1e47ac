//! `/healthz` (the process is alive) and `/readyz` (Redis, Postgres and the artifact store answer).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures::FutureExt;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::problem::Problem;
use crate::state::AppState;
use crate::views::sorted;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `/healthz`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Alive {
    #[schema(example = "ok")]
    status: &'static str,
}

/// `/readyz`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// Each dependency (`redis`, `postgres`, `artifact store`): `ok`.
    #[schema(value_type = std::collections::HashMap<String, String>)]
    checks: serde_json::Map<String, serde_json::Value>,
    #[schema(example = "ready")]
    status: &'static str,
}

/// The process is alive
#[utoipa::path(
    get,
    operation_id = "healthz",
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Alive", body = Alive)),
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Alive { status: "ok" })
}

async fn check<E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<(), E>>,
) -> Result<(), String> {
    match tokio::time::timeout(CHECK_TIMEOUT, f).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    }
}

/// Ready to serve
///
/// Redis, Postgres and the artifact store answer (each within 2 s).
#[utoipa::path(
    get,
    operation_id = "readyz",
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "A dependency is unreachable (`not_ready`): `checks` has each one's state", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (redis, postgres, store) = futures::join!(
        check(kiln_shared::redis::ping(state.queue.redis())).boxed(),
        check(kiln_shared::db::ping(&state.db)).boxed(),
        check(state.artifacts.check()).boxed(),
    );
    let results = [
        ("redis", redis),
        ("postgres", postgres),
        ("artifact store", store),
    ];
    let failing: Vec<String> = results
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name} ({e})")))
        .collect();
    let checks: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .map(|(name, r)| {
            (
                (*name).to_owned(),
                r.as_ref().map_or_else(|e| e.clone(), |()| "ok".into()).into(),
            )
        })
        .collect();
    if failing.is_empty() {
        Ok(sorted(
            StatusCode::OK,
            &Ready {
                checks,
                status: "ready",
            },
        ))
    } else {
        Err(ApiError::NotReady {
            message: format!("not ready: {} unreachable", failing.join(", ")),
            checks,
        })
    }
}
