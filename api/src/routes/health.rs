//! `/healthz` (the process is alive) and `/readyz` (Redis, Postgres and the artifact store answer).

use std::time::Duration;

use actix_web::{web, HttpResponse};
use futures::FutureExt;

use crate::error::ApiError;
use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
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
        Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready", "checks": checks })))
    } else {
        Err(ApiError::NotReady {
            message: format!("not ready: {} unreachable", failing.join(", ")),
            checks,
        })
    }
}
