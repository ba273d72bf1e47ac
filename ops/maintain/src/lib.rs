//! `kiln-ops maintain`: the nightly job that keeps the farm consistent. One run at a time
//! fleet-wide (a Redis lock with a fencing number, renewed while it runs); `--dry-run` reports
//! what it would change and changes nothing. Safe to run at any time, twice, or interrupted:
//! every repair is a compare-and-set against what it read.
//!
//! A run, in order: retention (rows deleted or archived), the blob GC and verification (objects
//! follow the rows), the fleet's package cache (packages unused for a while), the latest pointers (the KV) checked against Postgres, then the queue
//! ([`kiln_shared::consistency`]: queued builds without a stream entry, running builds without
//! a claim, project slots held by builds that ended).

pub mod gc;
pub mod packages;
pub mod pointers;
pub mod retention;

use std::time::Duration;

use kiln_shared::config::MaintenanceSettings;
use kiln_shared::consistency::{self, RepairError, Repairs};
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
    Redis(#[from] kiln_shared::redis::RedisError),
    #[error("postgres: {0}")]
    Db(#[from] kiln_shared::db::DbError),
    #[error("artifact store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Repair(#[from] RepairError),
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
    /// The builders' lease (`KILN_LEASE_SECS`): a running build with no claim for two of them
    /// is put back for a take-over.
    pub lease: Duration,
}

/// Rows of each kind the queue repairs look at in one run (the oldest first).
const QUEUE_REPAIRS_MAX: i64 = 100_000;

/// What a run did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub dry_run: bool,
    /// This run's fencing number.
    pub fence: i64,
    pub retention: retention::RetentionReport,
    pub blobs: gc::GcReport,
    pub packages: packages::PackageReport,
    pub pointers: pointers::PointerReport,
    pub queue: Repairs,
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
        packages: packages::collect(farm, dry_run).await?,
        pointers: pointers::check(farm, dry_run).await?,
        queue: repair_queue(farm, dry_run).await?,
        millis: 0,
    })
}

async fn repair_queue(farm: &Farm, dry_run: bool) -> Result<Repairs, MaintainError> {
    let (db, queue) = (&farm.db, &farm.queue);
    let mut done = Repairs::default();
    consistency::lost_entries(db, queue, QUEUE_REPAIRS_MAX, dry_run, &mut done).await?;
    consistency::lost_claims(db, queue, farm.lease, QUEUE_REPAIRS_MAX, dry_run, &mut done).await?;
    consistency::stale_slots(db, queue, dry_run, &mut done).await?;
    Ok(done)
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

impl Report {
    /// The report as Prometheus text, for node_exporter's textfile collector
    /// (`kiln-ops maintain --metrics-file /var/lib/node_exporter/kiln-maintenance.prom`).
    pub fn prometheus(&self, finished_at: chrono::DateTime<chrono::Utc>) -> String {
        let (r, b, p, q) = (&self.retention, &self.blobs, &self.pointers, &self.queue);
        let gauges: [(&str, &str, String); 26] = [
            (
                "last_run_timestamp_seconds",
                "When the last run finished.",
                finished_at.timestamp().to_string(),
            ),
            (
                "duration_seconds",
                "How long the last run took.",
                format!("{:.3}", self.millis as f64 / 1000.0),
            ),
            (
                "dry_run",
                "1 when the last run was a dry run.",
                u8::from(self.dry_run).to_string(),
            ),
            (
                "versions_deleted",
                "Versions deleted by retention.",
                r.deleted.to_string(),
            ),
            (
                "versions_archived",
                "Versions archived by retention.",
                r.archived.to_string(),
            ),
            (
                "events_deleted",
                "Build events past their retention.",
                r.events.to_string(),
            ),
            ("versions", "Versions the GC marked from.", b.versions.to_string()),
            (
                "blobs_referenced",
                "Distinct blobs the versions reference.",
                b.referenced.to_string(),
            ),
            (
                "blobs_referenced_bytes",
                "Their bytes.",
                b.referenced_bytes.to_string(),
            ),
            (
                "store_hot_bytes",
                "Bytes in blobs/ when listed.",
                b.hot.bytes.to_string(),
            ),
            (
                "store_archive_bytes",
                "Bytes in archive/ when listed.",
                b.archive.bytes.to_string(),
            ),
            (
                "store_trash_bytes",
                "Bytes in trash/ when listed.",
                b.trash.bytes.to_string(),
            ),
            (
                "blobs_trashed",
                "Unreferenced blobs moved to the trash.",
                b.trashed.to_string(),
            ),
            (
                "blobs_deleted",
                "Blobs deleted for good from the trash.",
                b.deleted.to_string(),
            ),
            ("blobs_deleted_bytes", "Their bytes.", b.deleted_bytes.to_string()),
            (
                "blobs_restored",
                "Referenced blobs brought back from the trash.",
                b.restored.to_string(),
            ),
            (
                "blobs_missing",
                "Referenced blobs found nowhere.",
                b.verify.missing_count.to_string(),
            ),
            (
                "blobs_corrupt",
                "Referenced blobs of the wrong size or hash.",
                b.verify.corrupt_count.to_string(),
            ),
            (
                "versions_need_rebuild",
                "Versions marked needs_rebuild by this run.",
                b.verify.needs_rebuild.len().to_string(),
            ),
            (
                "packages_deleted",
                "Package tarballs the package cache no longer needed, deleted.",
                self.packages.deleted.to_string(),
            ),
            (
                "packages_deleted_bytes",
                "Their bytes.",
                self.packages.deleted_bytes.to_string(),
            ),
            (
                "pointers_repaired",
                "Latest pointers set from Postgres.",
                p.repaired.to_string(),
            ),
            (
                "pointers_wrong",
                "Latest pointers found missing or wrong.",
                (p.missing.len() + p.wrong.len()).to_string(),
            ),
            (
                "builds_requeued",
                "Queued builds without a stream entry, queued again (or superseded).",
                (q.republished.len() + q.superseded.len()).to_string(),
            ),
            (
                "builds_taken_over",
                "Running builds without a claim, put back for a daemon to take over.",
                q.taken_over.len().to_string(),
            ),
            (
                "slots_released",
                "Project slots held by builds that had ended, released.",
                q.released.len().to_string(),
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in gauges {
            out.push_str(&format!(
                "# HELP kiln_maintenance_{name} {help}\n# TYPE kiln_maintenance_{name} gauge\nkiln_maintenance_{name} {value}\n"
            ));
        }
        out
    }
}
