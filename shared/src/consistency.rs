//! Repairs between Postgres (what each build is) and Redis (the stream, its claims and the
//! projects' in-flight slots). Every daemon's reconciler runs the first two each
//! `KILN_RECONCILE_SECS`; the nightly maintenance runs all three.
//!
//! - **Lost entries**: a `queued` row with no stream entry (the API crashed between its two
//!   writes, or Redis lost the entry) is queued again.
//! - **Lost claims**: a `running` row with no stream entry has no claim any daemon renews or
//!   could reclaim (Redis lost it): an entry is put back that the reading daemon takes over as
//!   a new attempt, counted as lost (so `KILN_MAX_ATTEMPTS` still ends it).
//! - **Stale slots**: a project slot held by a build that has ended (or never got a row) is
//!   released, so the project's next build is not refused or queued behind nothing.
//!
//! Each repair looks again right before it acts and acts by compare-and-set, so it never undoes
//! what a daemon or the API did meanwhile; a repair that raced a daemon is harmless (a daemon
//! that reads an entry for an ended build acknowledges it).

use std::time::Duration;

use serde::Serialize;

use crate::db::{events, versions, DbError, PgPool};
use crate::domain::{EventType, VersionId};
use crate::redis::{Admission, Queue, QuotaLimits, RedisError};

/// How old a queued row (or a slot's build) must be before a missing entry (or row) counts as
/// lost: admission writes the row, then milliseconds later the entry, and a repair must not
/// race it.
pub const MIN_AGE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("postgres: {0}")]
    Db(#[from] DbError),
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
}

/// What a pass did (or, dry, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Repairs {
    /// Queued builds that had no stream entry, queued again.
    pub republished: Vec<VersionId>,
    /// Queued builds without an entry replaced by a newer build of their project (which holds
    /// the slot), as a client's retry would have been.
    pub superseded: Vec<VersionId>,
    /// Running builds with no claim, put back for a daemon to take over.
    pub taken_over: Vec<VersionId>,
    /// Builds that had ended (or had no row) but still held their project's slot, released.
    pub released: Vec<String>,
}

impl Repairs {
    pub fn is_empty(&self) -> bool {
        *self == Repairs::default()
    }
}

/// Queued builds older than [`MIN_AGE`] (at most `limit`, oldest first) with no stream entry
/// are queued again.
pub async fn lost_entries(
    db: &PgPool,
    queue: &Queue,
    limit: i64,
    dry_run: bool,
    done: &mut Repairs,
) -> Result<(), RepairError> {
    let queued = versions::queued_before(db, MIN_AGE, limit).await?;
    if queued.is_empty() {
        return Ok(());
    }
    let in_stream = queue.builds_in_stream().await?;
    for v in queued {
        let id = v.id.to_string();
        if in_stream.contains(&id) {
            continue;
        }
        // A newer build of the project was admitted since, and may have finished already: it
        // wins, whatever became of it, or this older one would run after it and take the
        // latest pointer back.
        if let Some(newer) = versions::newer_of_project(db, &v).await? {
            if dry_run {
                done.superseded.push(v.id);
            } else if versions::supersede(db, v.id, newer).await?.is_some() {
                let data = serde_json::json!({ "supersededBy": newer });
                events::record(db, v.id, EventType::BuildSuperseded, &data).await?;
                done.superseded.push(v.id);
            }
            continue;
        }
        if dry_run {
            done.republished.push(v.id);
            continue;
        }
        let admitted = queue
            .admit(
                v.id,
                &v.user_id,
                &v.project_id,
                &v.project_label,
                &QuotaLimits::NONE,
                false,
            )
            .await?;
        match admitted {
            Admission::Queued { .. } => done.republished.push(v.id),
            // It holds its slot but lost its entry.
            Admission::Conflict { holder } if holder == id => {
                queue.republish(v.id, &v.user_id, &v.project_id).await?;
                done.republished.push(v.id);
            }
            Admission::Conflict { holder } => {
                // A newer build of the project was admitted since: it wins.
                let Ok(newer) = VersionId::parse(&holder) else {
                    continue; // a rollback holds the slot for seconds: next pass
                };
                if versions::supersede(db, v.id, newer).await?.is_some() {
                    let data = serde_json::json!({ "supersededBy": newer });
                    events::record(db, v.id, EventType::BuildSuperseded, &data).await?;
                    done.superseded.push(v.id);
                }
            }
            // Not counted (QuotaLimits::NONE): it was counted when it was admitted.
            Admission::OverQuota(_) => {}
            // Was admitted with this label before, so it cannot collide now.
            Admission::LabelTaken => {}
        }
    }
    Ok(())
}

/// Running builds whose attempt started more than two leases ago (at most `limit`) and that
/// have no stream entry get one back, for a daemon to take them over. A live attempt renews
/// its entry's claim every third of a lease and stops once it cannot, so after two leases
/// without an entry no daemon is building it.
pub async fn lost_claims(
    db: &PgPool,
    queue: &Queue,
    lease: Duration,
    limit: i64,
    dry_run: bool,
    done: &mut Repairs,
) -> Result<(), RepairError> {
    let running = versions::running_before(db, lease * 2, limit).await?;
    if running.is_empty() {
        return Ok(());
    }
    let in_stream = queue.builds_in_stream().await?;
    for v in running {
        if in_stream.contains(&v.id.to_string()) {
            continue;
        }
        // Still the same attempt, still running (it may have ended since the listing).
        if versions::attempt_of(db, v.id).await? != Some((v.status, v.attempts)) {
            continue;
        }
        tracing::warn!(build_id = %v.id, attempt = v.attempts, builder = ?v.builder_id,
            "a running build has no claim (its stream entry is gone): put back for a take-over");
        if !dry_run {
            queue
                .republish_for_take_over(v.id, &v.user_id, &v.project_id)
                .await?;
        }
        done.taken_over.push(v.id);
    }
    Ok(())
}

/// Project slots held by a build that has ended, or by a build with no row that is older
/// than [`MIN_AGE`] (its admission failed half-way), are released.
pub async fn stale_slots(
    db: &PgPool,
    queue: &Queue,
    dry_run: bool,
    done: &mut Repairs,
) -> Result<(), RepairError> {
    for (user, project, holder) in queue.held_slots().await? {
        let Ok(build) = VersionId::parse(&holder) else {
            continue;
        };
        let stale = match versions::attempt_of(db, build).await? {
            Some((status, _)) => status.is_final(),
            None => now_ms().saturating_sub(build.timestamp_ms()) > MIN_AGE.as_millis() as u64,
        };
        if !stale {
            continue;
        }
        if dry_run || queue.release(&holder, &user, &project).await? {
            tracing::warn!(build_id = %build, user_id = %user, project_id = %project,
                "a project slot was held by a build that has ended: released");
            done.released.push(holder);
        }
    }
    Ok(())
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}
