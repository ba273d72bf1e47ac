//! The queue's reconciler: every `KILN_RECONCILE_SECS` one daemon of the fleet (a Redis lock
//! picks it) repairs what Postgres and the stream disagree on
//! ([`kiln_shared::consistency`]):
//!
//! - a build whose row is `queued` but which has no stream entry (the API crashed between
//!   inserting the row and queueing it, or Redis lost the entry) is queued again;
//! - a build whose row is `running` but which has no entry (so no claim any daemon renews or
//!   could reclaim) gets an entry back, and the daemon that reads it takes the build over.

use kiln_shared::consistency::{self, Repairs};
use tokio_util::sync::CancellationToken;

use crate::context::Builder;

/// Rows looked at per pass, of each kind (the oldest first; the next pass takes the rest).
const BATCH: i64 = 200;

/// Runs [`pass`] every `KILN_RECONCILE_SECS` until shutdown.
pub async fn run(b: std::sync::Arc<Builder>, shutdown: CancellationToken) {
    let every = b.settings.fleet.reconcile_every;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let lock = b.queue.keys().reconcile_lock();
        match b.queue.try_lock(&lock, b.consumer(), every).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the reconcile lock");
                continue;
            }
        }
        match pass(&b).await {
            Ok(r) if r.is_empty() => {}
            Ok(r) => tracing::warn!(republished = ?r.republished, superseded = ?r.superseded,
                taken_over = ?r.taken_over, "the queue was reconciled with Postgres"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "reconciling the queue failed"),
        }
    }
}

/// One pass over the queued builds older than [`consistency::MIN_AGE`] and the running builds
/// older than two leases.
pub async fn pass(b: &Builder) -> anyhow::Result<Repairs> {
    let mut done = Repairs::default();
    consistency::lost_entries(&b.db, &b.queue, BATCH, false, &mut done).await?;
    consistency::lost_claims(&b.db, &b.queue, b.settings.fleet.lease, BATCH, false, &mut done).await?;
    Ok(done)
}
