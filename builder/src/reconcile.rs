//! The queue's reconciler: a build whose row is `queued` but which has no stream entry (the API
//! crashed between inserting the row and queueing it, or Redis lost the entry) is queued again.
//!
//! Every daemon runs it every `KILN_RECONCILE_SECS`; a Redis lock lets one of them at a time do
//! the work. Only rows older than [`MIN_AGE`] are looked at: admission writes the row and then,
//! milliseconds later, the entry, and the reconciler must not race it.

use std::time::Duration;

use kiln_shared::db::{events, versions};
use kiln_shared::domain::{EventType, VersionId};
use kiln_shared::redis::{Admission, QuotaLimits};
use tokio_util::sync::CancellationToken;

use crate::daemon::Builder;

/// How old a queued row must be before its missing entry counts as lost.
pub const MIN_AGE: Duration = Duration::from_secs(60);
const BATCH: i64 = 200;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Queued again (slot claimed and entry added, or the entry alone).
    pub republished: Vec<VersionId>,
    /// Replaced by a newer build that holds the project's slot.
    pub superseded: Vec<VersionId>,
}

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
            Ok(r) if r == Reconciled::default() => {}
            Ok(r) => tracing::warn!(republished = ?r.republished, superseded = ?r.superseded,
                "queued builds that had no stream entry were reconciled"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "reconciling the queue failed"),
        }
    }
}

/// One pass over the queued builds older than [`MIN_AGE`].
pub async fn pass(b: &Builder) -> anyhow::Result<Reconciled> {
    let mut done = Reconciled::default();
    let queued = versions::queued_before(&b.db, MIN_AGE, BATCH).await?;
    if queued.is_empty() {
        return Ok(done);
    }
    let in_stream = b.queue.builds_in_stream().await?;
    for v in queued {
        let id = v.id.to_string();
        if in_stream.contains(&id) {
            continue;
        }
        match b
            .queue
            .admit(
                v.id,
                &v.user_id,
                &v.project_id,
                &v.project_label,
                &QuotaLimits::NONE,
                false,
            )
            .await?
        {
            Admission::Queued { .. } => done.republished.push(v.id),
            // It holds its slot but lost its entry.
            Admission::Conflict { holder } if holder == id => {
                b.queue.republish(v.id, &v.user_id, &v.project_id).await?;
                done.republished.push(v.id);
            }
            Admission::Conflict { holder } => {
                // A newer build of the project was admitted since: it wins, as a client's
                // retry of this request would have.
                let Ok(newer) = VersionId::parse(&holder) else {
                    continue; // a rollback holds the slot for seconds: next pass
                };
                if versions::supersede(&b.db, v.id, newer).await?.is_some() {
                    let data = serde_json::json!({ "supersededBy": newer });
                    events::record(&b.db, v.id, EventType::BuildSuperseded, &data).await?;
                    done.superseded.push(v.id);
                }
            }
            // Not counted (QuotaLimits::NONE): it was counted when it was admitted.
            Admission::OverQuota(_) => {}
        }
    }
    Ok(done)
}
