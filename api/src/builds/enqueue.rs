//! A new version's row queued: inserted (batched), then the project's slot claimed and the
//! stream entry added in one atomic step, counted against the quotas. A stale holder of the
//! slot is released; a live one is replaced as the request's `onConflict` allows (a queued
//! build superseded, a running one cancelled), else the request is a 409 and its row goes.

use kiln_shared::db::events;
use kiln_shared::db::versions::{self, Metrics, NewVersion};
use kiln_shared::domain::{BuildStatus, EventType, ProjectId, Step, UserId, VersionId};
use kiln_shared::redis::Admission;

use super::cancel::cancel;
use super::context::Builds;
use super::request::{OnConflict, Queued, Replaced};
use super::slot::SlotHolder;
use crate::error::ApiError;

/// Records a new queued version and queues it: its row first, then the project's slot and the
/// stream entry in one atomic step. A stale claim (its build is over) is released; a live one
/// is replaced as `on_conflict` allows, else it is a 409 and the row goes again. `None` when
/// the row was not inserted (`only_if_first`, and the project has a deployed version).
pub async fn enqueue(
    b: &Builds<'_>,
    row: NewVersion,
    on_conflict: OnConflict,
) -> Result<Option<Queued>, ApiError> {
    let (id, user, project, label) = (
        row.id,
        row.user_id.clone(),
        row.project_id.clone(),
        row.project_label.clone(),
    );
    let inserted = match b.batch.rows.call(row).await {
        Ok(inserted) => inserted,
        Err(e) if e.is_unavailable() => {
            forget_if_committed(b, id);
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    if !inserted {
        return Ok(None);
    }

    // Claim the slot and queue, atomically, counting the build against its quota. A stale or
    // replaced claim is released, and the claim tried again (a few times: other requests may be
    // racing for the slot). A request that may replace the holder takes its quota unit before it
    // replaces anything (so a used-up quota never leaves the project with its queued build
    // superseded and nothing in its place), and gives it back if it does not get queued.
    let replacing = on_conflict != OnConflict::Reject;
    let mut reserved = false;
    let mut replaced = None;
    for _ in 0..CLAIM_TRIES {
        match b
            .queue
            .admit(id, &user, &project, &label, b.quotas, replacing)
            .await
        {
            Ok(Admission::Queued { .. }) => {
                let mut answer = Queued::new(b.urls, id, user, project);
                answer.replaced = replaced;
                return Ok(Some(answer));
            }
            Ok(Admission::OverQuota(hit)) => {
                withdraw(b, id, &user, &project, reserved).await?;
                return Err(ApiError::over_quota(hit));
            }
            Ok(Admission::LabelTaken) => {
                withdraw(b, id, &user, &project, reserved).await?;
                return Err(ApiError::PreviewHostTaken(format!(
                    "the preview host {label} already belongs to another project (its label collides with this project's): use another projectId"
                )));
            }
            Ok(Admission::Conflict { holder }) => {
                let holder = SlotHolder::parse(&holder);
                reserved |= replacing && !b.quotas.is_off();
                // The row exists from here on: an error must not leave it queued with no entry.
                match holder.is_live(b).await {
                    Ok(true) => match replace(b, &holder, id, on_conflict).await {
                        Ok(Replacement::Done(r)) => {
                            replaced = Some(r);
                            continue; // its slot was released
                        }
                        Ok(Replacement::Gone) => {}
                        Ok(Replacement::Refused) => {
                            withdraw(b, id, &user, &project, reserved).await?;
                            return Err(holder.conflict());
                        }
                        Err(e) => {
                            withdraw(b, id, &user, &project, reserved).await?;
                            return Err(e);
                        }
                    },
                    Ok(false) => {}
                    Err(e) => {
                        withdraw(b, id, &user, &project, reserved).await?;
                        return Err(e);
                    }
                }
                tracing::warn!(stale = %holder, "releasing a stale in-flight claim");
                if let Err(e) = b.queue.release(&holder.to_string(), &user, &project).await {
                    refund(b, id, &user, &project, reserved).await;
                    return Err(queue_unavailable(b, id, e).await);
                }
            }
            Err(e) => {
                refund(b, id, &user, &project, reserved).await;
                return Err(queue_unavailable(b, id, e).await);
            }
        }
    }
    withdraw(b, id, &user, &project, reserved).await?;
    Err(ApiError::Unavailable {
        what: "the in-flight claim",
        cause: anyhow::anyhow!("the project's claim kept changing"),
    })
}

/// A request that will not be queued after all: its quota unit back (if it took one), its row
/// gone (nobody has seen it).
async fn withdraw(
    b: &Builds<'_>,
    id: VersionId,
    user: &UserId,
    project: &ProjectId,
    reserved: bool,
) -> Result<(), ApiError> {
    refund(b, id, user, project, reserved).await;
    versions::delete_unclaimed(b.db, id).await?;
    Ok(())
}

/// Gives back the quota unit a request reserved (best effort: a unit that cannot be given back
/// leaves the window with the others).
async fn refund(b: &Builds<'_>, id: VersionId, user: &UserId, project: &ProjectId, reserved: bool) {
    if !reserved {
        return;
    }
    if let Err(e) = b.queue.refund(id, user, project).await {
        tracing::warn!(error = %e, "cannot give back the quota unit of a build that was not queued");
    }
}

/// How often admission tries the project's claim: requests replacing each other (`onConflict`)
/// may find a new holder on each try.
const CLAIM_TRIES: usize = 5;

/// An insert whose answer was lost with Postgres may still have committed. The client is told
/// 503 and retries (as a new build), so a committed row must not also become a build once the
/// reconciler finds it queued without a stream entry: it is deleted (if still unclaimed) as
/// soon as Postgres answers again. The chaos suite's `postgres` scenario found the duplicate.
fn forget_if_committed(b: &Builds<'_>, id: VersionId) {
    let db = b.db.clone();
    tokio::spawn(async move {
        let forget = kiln_shared::db::patiently(
            "removing a row whose insert went unanswered",
            FORGET_PATIENCE,
            || versions::delete_unclaimed(&db, id),
        );
        if let Err(e) = forget.await {
            tracing::error!(build_id = %id, error = %e,
                "cannot remove a row whose insert went unanswered; the reconciler may queue it");
        }
    });
}

/// How long an unanswered insert's clean-up waits for Postgres (the reconciler leaves queued rows
/// alone for their first minute).
const FORGET_PATIENCE: std::time::Duration = std::time::Duration::from_secs(55);

/// What [`replace`] did with the build holding the project's slot.
enum Replacement {
    /// Superseded or cancelled; its slot was released.
    Done(Replaced),
    /// It ended meanwhile (another request replaced it first): its claim is stale, and the
    /// claim is tried again.
    Gone,
    /// It may not be replaced (a running build without `cancel-running`, a rollback): a 409.
    Refused,
}

/// Replaces the live build holding the project's slot, as `on_conflict` allows: a queued one is
/// superseded by `by`, a running one cancelled (`cancel-running` only). Its slot is released.
async fn replace(
    b: &Builds<'_>,
    holder: &SlotHolder,
    by: VersionId,
    on_conflict: OnConflict,
) -> Result<Replacement, ApiError> {
    if on_conflict == OnConflict::Reject {
        return Ok(Replacement::Refused);
    }
    let SlotHolder::Build(old) = *holder else {
        return Ok(Replacement::Refused); // a rollback's hold: it lasts seconds
    };
    if let Some(v) = versions::supersede(b.db, old, by).await? {
        tracing::info!(superseded = %old, "a queued build was superseded by a newer request");
        b.metrics.build_finished("superseded");
        let data = serde_json::json!({ "supersededBy": by });
        events::record(b.db, old, EventType::BuildSuperseded, &data).await?;
        b.queue
            .release(&holder.to_string(), &v.user_id, &v.project_id)
            .await
            .map_err(|e| ApiError::Unavailable {
                what: "the build queue",
                cause: e.into(),
            })?;
        return Ok(Replacement::Done(Replaced {
            build_id: old,
            status: BuildStatus::Superseded,
        }));
    }
    if on_conflict != OnConflict::CancelRunning {
        // Not queued any more: running (a 409), or replaced by a request that raced this one.
        return Ok(match holder.is_live(b).await? {
            true => Replacement::Refused,
            false => Replacement::Gone,
        });
    }
    match cancel(b, old).await {
        Ok(_) => Ok(Replacement::Done(Replaced {
            build_id: old,
            status: BuildStatus::Cancelled,
        })),
        // It ended meanwhile: its claim is stale and is released on the next try.
        Err(ApiError::WrongStatus { .. }) => Ok(Replacement::Gone),
        Err(e) => Err(e),
    }
}

async fn queue_unavailable(b: &Builds<'_>, id: VersionId, e: kiln_shared::redis::RedisError) -> ApiError {
    tracing::error!(error = %e, "the build queue is unavailable");
    let reason = format!("the build queue is unavailable: {e}");
    let failed = versions::Failed::new(Step::Queue, "queue_unavailable", &reason);
    match versions::mark_failed(b.db, id, None, &failed, &Metrics::default()).await {
        Ok(true) => {
            // Redis is down, so this event is only in Postgres (streams read it from there).
            let data = failed.event_data();
            if let Err(db) = events::record(b.db, id, EventType::BuildFailed, &data).await {
                tracing::error!(error = %db, "cannot record the failed admission's event");
            }
        }
        Ok(false) => {}
        Err(db) => tracing::error!(error = %db, "cannot record the failed admission"),
    }
    ApiError::QueueUnavailable {
        message: "the build queue is unavailable; the build was not queued and is recorded as failed".into(),
        build_id: id.to_string(),
    }
}
