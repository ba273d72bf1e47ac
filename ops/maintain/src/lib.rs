//! `kiln-ops maintain`: the nightly job that keeps the farm consistent. One run at a time
//! fleet-wide (a Redis lock with a fencing number, renewed while it runs); `--dry-run` reports
//! what it would change and changes nothing. Safe to run at any time, twice, or interrupted:
//! every repair is a compare-and-set against what it read.
//!
//! A run, in order: retention (rows deleted or archived), the blob GC and verification (objects
//! follow the rows), then the latest pointers (the KV) checked against Postgres.

pub mod gc;
pub mod pointers;
pub mod retention;

use std::time::Duration;

use kiln_shared::config::MaintenanceSettings;
use kiln_shared::db::PgPool;
use kiln_shared::preview::PreviewUrls;
use kiln_shared::redis::{MaintenanceLock, Queue};
use kiln_shared::store::{Artifacts, StoreError};
use serde::Serialize;

/// The lock lasts this long unrenewed; the run renews it every third of it.
pub const LOCK_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum MaintainError {
    #[error("redis: {0}")]
    Redis(#[from] kiln_shared::redis::QueueError),
    #[error("postgres: {0}")]
    Db(#[from] kiln_shared::db::DbError),
    #[error("artifact store: {0}")]
    Store(#[from] StoreError),
    #[error("the maintenance lock was lost during the run (another runner may have taken it): stopped")]
    LockLost,
}

/// What a run needs.
#[derive(Debug, Clone)]
pub struct Farm {
    pub db: PgPool,
    pub queue: Queue,
    pub artifacts: Artifacts,
    pub urls: PreviewUrls,
    pub settings: MaintenanceSettings,
}

/// What a run did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub dry_run: bool,
    /// This run's fencing number.
    pub fence: i64,
    pub retention: retention::RetentionReport,
    pub blobs: gc::GcReport,
    pub pointers: pointers::PointerReport,
    pub millis: u64,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ran(Box<Report>),
    /// Another run holds the lock.
    Busy {
        holder: String,
        expires_in_ms: i64,
    },
}

/// One maintenance run as `holder`.
pub async fn maintain(farm: &Farm, holder: &str, dry_run: bool) -> Result<Outcome, MaintainError> {
    let started = std::time::Instant::now();
    let lock = match farm.queue.take_maintenance_lock(holder, LOCK_TTL).await? {
        Ok(lock) => lock,
        Err((holder, left)) => {
            return Ok(Outcome::Busy {
                holder,
                expires_in_ms: left,
            })
        }
    };
    tracing::info!(fence = lock.fence, dry_run, "maintenance run started");
    let result = tokio::select! {
        r = run(farm, &lock, dry_run) => r,
        lost = keep(farm, &lock) => Err(lost),
    };
    if let Err(e) = farm.queue.release_maintenance_lock(&lock).await {
        tracing::warn!(error = %e, "cannot release the maintenance lock (it expires by itself)");
    }
    let mut report = result?;
    report.millis = started.elapsed().as_millis() as u64;
    Ok(Outcome::Ran(Box::new(report)))
}

async fn run(farm: &Farm, lock: &MaintenanceLock, dry_run: bool) -> Result<Report, MaintainError> {
    Ok(Report {
        dry_run,
        fence: lock.fence,
        retention: retention::apply(farm, dry_run).await?,
        blobs: gc::collect(farm, dry_run).await?,
        pointers: pointers::check(farm, dry_run).await?,
        millis: 0,
    })
}

/// Renews the lock until it is lost (then the run stops).
async fn keep(farm: &Farm, lock: &MaintenanceLock) -> MaintainError {
    loop {
        tokio::time::sleep(LOCK_TTL / 3).await;
        match farm.queue.renew_maintenance_lock(lock, LOCK_TTL).await {
            Ok(true) => {}
            Ok(false) => return MaintainError::LockLost,
            Err(e) => tracing::warn!(error = %e, "cannot renew the maintenance lock; trying again"),
        }
    }
}
