//! The attempt state machine: every change of a build's status once its row exists, each one a
//! fenced update that happens only from the statuses [`TRANSITIONS`] lists (a build that
//! already moved on is left alone, and the caller told so). A build runs as numbered attempts:
//! `start` and `take_over` begin one, and the builder's later writes name it (`attempts`), so a
//! lost builder's late writes change nothing once another attempt has taken the build over.
//!
//! The functions take any executor (a pool, a connection, a transaction), so that a status
//! change and the event that records it ([`crate::db::events::record`]) can share a
//! transaction.

use sqlx::types::Json;
use sqlx::{Acquire, PgExecutor, Postgres, Row};

use super::row::{corrupt, optional};
use super::{get, Metrics, Version};
use crate::db::DbError;
use crate::domain::{BuildStatus, Diagnostic, Step, VersionId, MAX_DIAGNOSTICS};
use crate::store::Manifest;

/// One legal change of a build's status: the function that makes it, the statuses it acts
/// from, and the status it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub by: &'static str,
    pub from: &'static [BuildStatus],
    pub to: BuildStatus,
}

impl Transition {
    const fn new(by: &'static str, from: &'static [BuildStatus], to: BuildStatus) -> Self {
        Self { by, from, to }
    }
}

/// Every legal status change of a build. A row is born `queued` (admission) or `deployed` (a
/// rollback); `deployed`, `failed`, `cancelled` and `superseded` are final: nothing leaves them.
/// Each function's `where status ...` is its line here; the tests run every function from every
/// status against this table.
pub const TRANSITIONS: &[Transition] = {
    use BuildStatus::{Cancelled, Deployed, Failed, Queued, Running, Superseded};
    &[
        Transition::new("start", &[Queued], Running),
        Transition::new("take_over", &[Queued, Running], Running),
        Transition::new("hand_back", &[Running], Queued),
        Transition::new("supersede", &[Queued], Superseded),
        Transition::new("cancel", &[Queued, Running], Cancelled),
        Transition::new("mark_deployed", &[Running], Deployed),
        Transition::new("mark_failed", &[Queued, Running], Failed),
        Transition::new("fail_lost", &[Queued, Running], Failed),
    ]
};

/// Whether a build may go from `from` to `to` (by any function).
pub fn is_legal(from: BuildStatus, to: BuildStatus) -> bool {
    TRANSITIONS.iter().any(|t| t.to == to && t.from.contains(&from))
}

/// Moves a queued build to running on `builder`; `None` when it was not queued (already taken,
/// cancelled or finished). The row's new `attempts` fences every later write of this attempt.
pub async fn start(
    db: impl PgExecutor<'_>,
    id: VersionId,
    builder: &str,
) -> Result<Option<Version>, DbError> {
    sqlx::query(
        "update versions set status = 'running', started_at = now(), attempts = attempts + 1,
             builder_id = $2, queue_ms = (extract(epoch from now() - created_at) * 1000)::bigint
         where id = $1 and status = 'queued' returning *",
    )
    .bind(id.to_string())
    .bind(builder)
    .fetch_optional(db)
    .await
    .map_err(DbError::from)
    .and_then(optional)
}

/// What [`take_over`] found.
#[derive(Debug, Clone)]
pub enum TakeOver {
    /// The build runs again on the new builder, as a new attempt.
    Running(Version),
    /// Its builders were lost `max_attempts` times: the caller records it failed.
    Exhausted(Version),
    /// It already ended (its builder died after recording the outcome, or it was cancelled).
    Finished(Version),
    Missing,
}

/// A build whose builder was lost (its stream entry sat unrenewed for a lease): runs it again
/// on `builder` as a new attempt, unless its builders were lost `max_attempts` times.
pub async fn take_over(
    db: impl Acquire<'_, Database = Postgres>,
    id: VersionId,
    builder: &str,
    max_attempts: i32,
) -> Result<TakeOver, DbError> {
    let mut conn = db.acquire().await?;
    let taken = sqlx::query(
        "update versions set status = 'running', started_at = now(), attempts = attempts + 1,
             lost = lost + 1, builder_id = $2,
             queue_ms = coalesce(queue_ms, (extract(epoch from now() - created_at) * 1000)::bigint)
         where id = $1 and status in ('queued', 'running') and lost + 1 < $3 returning *",
    )
    .bind(id.to_string())
    .bind(builder)
    .bind(max_attempts)
    .fetch_optional(&mut *conn)
    .await
    .map_err(DbError::from)
    .and_then(optional)?;
    if let Some(v) = taken {
        return Ok(TakeOver::Running(v));
    }
    let Some(v) = get(&mut *conn, id).await? else {
        return Ok(TakeOver::Missing);
    };
    Ok(if v.status.is_final() {
        TakeOver::Finished(v)
    } else {
        TakeOver::Exhausted(v)
    })
}

/// Records a build whose builders were lost `max_attempts` times as failed at `step`.
/// `None` when something else ended it first.
pub async fn fail_lost(
    db: impl PgExecutor<'_>,
    id: VersionId,
    step: Step,
) -> Result<Option<Version>, DbError> {
    sqlx::query(
        "update versions set status = 'failed', finished_at = now(), failed_step = $2,
             lost = lost + 1, error = 'builder lost ' || (lost + 1) || ' times',
             diagnostics = jsonb_build_array(jsonb_build_object('step', $2::text, 'tool', 'kiln',
                 'severity', 'error', 'file', null, 'line', null, 'column', null,
                 'code', 'builder_lost', 'message', 'builder lost ' || (lost + 1) || ' times')),
             diagnostics_total = 1,
             total_ms = (extract(epoch from now() - created_at) * 1000)::bigint
         where id = $1 and status in ('queued', 'running') returning *",
    )
    .bind(id.to_string())
    .bind(step.as_str())
    .fetch_optional(db)
    .await
    .map_err(DbError::from)
    .and_then(optional)
}

/// Gives a running attempt back to the queue (its daemon is draining): the build is queued
/// again, not failed. `false` when the attempt is no longer the build's current one.
pub async fn hand_back(db: impl PgExecutor<'_>, id: VersionId, attempt: i32) -> Result<bool, DbError> {
    let done = sqlx::query(
        "update versions set status = 'queued', started_at = null
         where id = $1 and status = 'running' and attempts = $2",
    )
    .bind(id.to_string())
    .bind(attempt)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A build's status and current attempt, for a running attempt to check that it still is the
/// build's current one.
pub async fn attempt_of(
    db: impl PgExecutor<'_>,
    id: VersionId,
) -> Result<Option<(BuildStatus, i32)>, DbError> {
    let row = sqlx::query("select status, attempts from versions where id = $1")
        .bind(id.to_string())
        .fetch_optional(db)
        .await?;
    row.map(|r| {
        let status: String = r.try_get("status")?;
        Ok((
            status.parse().map_err(|e| corrupt(&id.to_string(), e))?,
            r.try_get("attempts")?,
        ))
    })
    .transpose()
}

/// Marks a still-queued build superseded by the newer build `by` (whose row exists); `None`
/// when it is no longer queued.
pub async fn supersede(
    db: impl PgExecutor<'_>,
    id: VersionId,
    by: VersionId,
) -> Result<Option<Version>, DbError> {
    sqlx::query(
        "update versions set status = 'superseded', superseded_by = $2, finished_at = now(),
             total_ms = (extract(epoch from now() - created_at) * 1000)::bigint
         where id = $1 and status = 'queued' returning *",
    )
    .bind(id.to_string())
    .bind(by.to_string())
    .fetch_optional(db)
    .await
    .map_err(DbError::from)
    .and_then(optional)
}

/// Cancels a queued or running build. `Ok(Ok(v))`: cancelled now; `Ok(Err(v))`: it had already
/// ended (`v` as it is); `None`: no such build.
pub async fn cancel(
    db: impl Acquire<'_, Database = Postgres>,
    id: VersionId,
) -> Result<Option<Result<Version, Version>>, DbError> {
    let mut conn = db.acquire().await?;
    let cancelled = sqlx::query(
        "update versions set status = 'cancelled', finished_at = now(),
             total_ms = (extract(epoch from now() - created_at) * 1000)::bigint
         where id = $1 and status in ('queued', 'running') returning *",
    )
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(DbError::from)
    .and_then(optional)?;
    if let Some(v) = cancelled {
        return Ok(Some(Ok(v)));
    }
    Ok(get(&mut *conn, id).await?.map(Err))
}

/// What a successful build records.
#[derive(Debug, Clone)]
pub struct Deployed<'a> {
    /// The source tree, when the build changed it (it adds the lockfile pnpm wrote).
    pub sources: Option<&'a Manifest>,
    pub output_manifest_key: &'a str,
    pub framework: Option<&'a str>,
    pub node_version: Option<&'a str>,
    pub pnpm_version: Option<&'a str>,
    pub metadata: Option<&'a serde_json::Value>,
    /// The folder the output was published from (`.`: the tree as it came).
    pub output_dir: Option<&'a str>,
    /// What the build's checks said in `warn` mode (they did not fail it).
    pub diagnostics: &'a [Diagnostic],
    pub diagnostics_total: usize,
    pub metrics: &'a Metrics,
    /// What decides the output (see [`Version::build_key`]), when the build qualifies for reuse.
    pub build_key: Option<&'a str>,
    /// The deployed version whose output this one serves, when it was not built.
    pub reused_from: Option<VersionId>,
}

/// What a failed build keeps: the step, a short summary, what the tools said, and what it was
/// being built as (as far as it got).
#[derive(Debug, Clone, Copy)]
pub struct Failed<'a> {
    pub step: Step,
    pub error: &'a str,
    /// Kiln's code for the failure, for the one diagnostic recorded when no tool said anything
    /// (`needs_server`, `timeout`, `command_failed`…): every failed build carries at least one.
    pub code: &'a str,
    pub diagnostics: &'a [Diagnostic],
    pub diagnostics_total: usize,
    pub framework: Option<&'a str>,
    pub node_version: Option<&'a str>,
    pub pnpm_version: Option<&'a str>,
}

impl<'a> Failed<'a> {
    /// A failure known only by its step and reason (the queue's, a lost builder's).
    pub fn new(step: Step, code: &'a str, error: &'a str) -> Self {
        Failed {
            step,
            error,
            code,
            diagnostics: &[],
            diagnostics_total: 0,
            framework: None,
            node_version: None,
            pnpm_version: None,
        }
    }
}

impl Failed<'_> {
    /// The diagnostics recorded: the tools', else one of Kiln's saying the error.
    pub fn diagnostics(&self) -> std::borrow::Cow<'_, [Diagnostic]> {
        match self.diagnostics {
            [] => std::borrow::Cow::Owned(vec![Diagnostic::kiln(self.step, self.code, self.error)]),
            some => std::borrow::Cow::Borrowed(&some[..some.len().min(MAX_DIAGNOSTICS)]),
        }
    }

    /// The `build_failed` event's data (its webhook's too): the step, the reason, the
    /// diagnostics and how many there were in all.
    pub fn event_data(&self) -> serde_json::Value {
        let diagnostics = self.diagnostics();
        serde_json::json!({
            "step": self.step,
            "reason": self.error,
            "diagnosticsTotal": self.diagnostics_total.max(diagnostics.len()),
            "diagnostics": diagnostics,
        })
    }
}

/// Diagnostics as stored: at most [`MAX_DIAGNOSTICS`], null when there are none.
fn stored(diagnostics: &[Diagnostic]) -> Option<Json<&[Diagnostic]>> {
    (!diagnostics.is_empty()).then(|| Json(&diagnostics[..diagnostics.len().min(MAX_DIAGNOSTICS)]))
}

fn total(diagnostics: &[Diagnostic], total: usize) -> Option<i32> {
    (!diagnostics.is_empty() || total > 0).then(|| total.max(diagnostics.len()).min(i32::MAX as usize) as i32)
}

/// Records a running build as deployed; `None` when it was no longer running.
pub async fn mark_deployed(
    db: impl PgExecutor<'_>,
    id: VersionId,
    attempt: i32,
    d: &Deployed<'_>,
) -> Result<Option<Version>, DbError> {
    let m = d.metrics;
    sqlx::query(
        "update versions set status = 'deployed', finished_at = now(),
             source_manifest = coalesce($2, source_manifest), output_manifest_key = $3,
             framework = coalesce(framework, $4), node_version = $5, pnpm_version = $6,
             metadata = coalesce($7, metadata),
             generate_ms = $8, install_ms = $9, build_ms = $10, upload_ms = $11,
             output_bytes = $12, file_count = $13, output_dir = $15, diagnostics = $16,
             diagnostics_total = $17, check_ms = $18, build_key = $19, reused_from = $20,
             total_ms = (extract(epoch from now() - created_at) * 1000)::bigint
         where id = $1 and status = 'running' and attempts = $14 returning *",
    )
    .bind(id.to_string())
    .bind(d.sources.map(Json))
    .bind(d.output_manifest_key)
    .bind(d.framework)
    .bind(d.node_version)
    .bind(d.pnpm_version)
    .bind(d.metadata)
    .bind(m.generate_ms)
    .bind(m.install_ms)
    .bind(m.build_ms)
    .bind(m.upload_ms)
    .bind(m.output_bytes)
    .bind(m.file_count)
    .bind(attempt)
    .bind(d.output_dir)
    .bind(stored(d.diagnostics))
    .bind(total(d.diagnostics, d.diagnostics_total))
    .bind(m.check_ms)
    .bind(d.build_key)
    .bind(d.reused_from.map(|id| id.to_string()))
    .fetch_optional(db)
    .await
    .map_err(DbError::from)
    .and_then(optional)
}

/// Records a queued or running build as failed, keeping the step and the reason, and whatever
/// timings it got to. `attempt` fences a builder's write (`None`: any attempt). `false` when
/// the build had already finished, or the attempt is not the current one.
pub async fn mark_failed(
    db: impl PgExecutor<'_>,
    id: VersionId,
    attempt: Option<i32>,
    f: &Failed<'_>,
    metrics: &Metrics,
) -> Result<bool, DbError> {
    let diagnostics = &f.diagnostics()[..];
    let done = sqlx::query(
        "update versions set status = 'failed', finished_at = now(), failed_step = $2, error = $3,
             generate_ms = $4, install_ms = $5, build_ms = $6, upload_ms = $7, check_ms = $9,
             diagnostics = $10, diagnostics_total = $11, framework = coalesce(framework, $12),
             node_version = coalesce($13, node_version), pnpm_version = coalesce($14, pnpm_version),
             total_ms = (extract(epoch from now() - created_at) * 1000)::bigint
         where id = $1 and status in ('queued', 'running') and ($8::int is null or attempts = $8)",
    )
    .bind(id.to_string())
    .bind(f.step.as_str())
    .bind(f.error)
    .bind(metrics.generate_ms)
    .bind(metrics.install_ms)
    .bind(metrics.build_ms)
    .bind(metrics.upload_ms)
    .bind(attempt)
    .bind(metrics.check_ms)
    .bind(stored(diagnostics))
    .bind(total(diagnostics, f.diagnostics_total))
    .bind(f.framework)
    .bind(f.node_version)
    .bind(f.pnpm_version)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_leaves_a_final_status_and_every_other_status_is_left() {
        for &status in BuildStatus::ALL {
            let left = TRANSITIONS.iter().any(|t| t.from.contains(&status));
            assert_eq!(left, !status.is_final(), "{status}");
        }
    }

    #[test]
    fn every_status_is_reached_by_a_transition() {
        for &status in BuildStatus::ALL {
            let reached = TRANSITIONS.iter().any(|t| t.to == status);
            assert!(reached, "{status}");
        }
        assert!(is_legal(BuildStatus::Running, BuildStatus::Queued));
        assert!(!is_legal(BuildStatus::Deployed, BuildStatus::Running));
        assert!(!is_legal(BuildStatus::Queued, BuildStatus::Deployed));
    }
}
