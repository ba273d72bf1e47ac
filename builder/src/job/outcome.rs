//! The attempt's books: what follows a build's outcome. A success or a final failure is
//! recorded (the version's row, its event, the latest pointer), an infrastructure failure is
//! retried after a backoff, a drained attempt is handed back to the queue, a build whose
//! builders were all lost is given up, one that ended while its builder died is settled; then
//! the project's slot is released and the stream entry acked.

use std::time::Instant as StdInstant;

use bytes::Bytes;
use kiln_shared::db::versions::{self, Deployed, Metrics, Version};
use kiln_shared::db::{events, patiently};
use kiln_shared::domain::{BuildStatus, EventType, Step, VersionId};
use kiln_shared::metrics::Phase;
use kiln_shared::redis::{Job, LatestPointer, LogEntry};
use kiln_shared::store::Manifest;
use serde_json::json;

use super::failure::{Cause, Failure};
use crate::context::Builder;
use crate::lease::{Stop, Stopper};
use crate::log::{BuildLog, LogShipper};

/// How long a finished attempt waits for an unreachable Postgres to record its outcome. Its
/// claim is renewed meanwhile (in Redis), so nobody else takes the build; past this the
/// attempt gives up, and the build is taken over once its claim lapses.
const RECORD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// How long an attempt that hit an infrastructure error waits before going back to the queue:
/// 1 s after the first attempt, then doubling, at most [`MAX_RETRY_BACKOFF`].
pub fn retry_backoff(attempt: i32) -> std::time::Duration {
    let exp = attempt.clamp(1, 16) as u32 - 1;
    (RETRY_BACKOFF_BASE * 2u32.pow(exp)).min(MAX_RETRY_BACKOFF)
}

const RETRY_BACKOFF_BASE: std::time::Duration = std::time::Duration::from_secs(1);
const MAX_RETRY_BACKOFF: std::time::Duration = std::time::Duration::from_secs(60);

/// What a successful run of the stations hands to the books.
pub(super) struct Success {
    /// The source tree, when the build changed it (the lockfile pnpm wrote).
    pub(super) sources: Option<Manifest>,
    pub(super) output_manifest_key: String,
    pub(super) framework: Option<String>,
    /// The folder published (`.`: the tree as it came).
    pub(super) output_dir: Option<String>,
    /// What the checks in `warn` mode found.
    pub(super) diagnostics: Vec<kiln_shared::domain::Diagnostic>,
    pub(super) diagnostics_total: usize,
    pub(super) metadata: Option<serde_json::Value>,
}

/// Records a successful attempt (one that reused `reused_from`'s output, or built one keyed
/// `build_key`); `false` when it was no longer the build's current attempt
/// (cancelled, or taken over) and nothing was recorded.
pub(super) async fn record_success(
    b: &Builder,
    version: &Version,
    s: Success,
    metrics: &Metrics,
    build_key: Option<&str>,
    reused_from: Option<VersionId>,
) -> anyhow::Result<bool> {
    let deployed = Deployed {
        sources: s.sources.as_ref(),
        output_manifest_key: &s.output_manifest_key,
        framework: s.framework.as_deref(),
        node_version: b.toolchain.node.as_deref(),
        pnpm_version: b.toolchain.pnpm.as_deref(),
        metadata: s.metadata.as_ref(),
        output_dir: s.output_dir.as_deref(),
        diagnostics: &s.diagnostics,
        diagnostics_total: s.diagnostics_total,
        metrics,
        build_key,
        reused_from,
    };
    let recorded = patiently("recording the deployment", RECORD_PATIENCE, || {
        versions::mark_deployed(&b.db, version.id, version.attempts, &deployed)
    })
    .await?;
    let recorded = match recorded {
        Some(v) => Some(v),
        // A retried write may find its own first try committed (the answer was lost with the
        // connection): the row is deployed by this very attempt, so it is ours to finish.
        None => versions::get(&b.db, version.id)
            .await?
            .filter(|v| v.status == BuildStatus::Deployed && v.attempts == version.attempts),
    };
    let Some(deployed) = recorded else {
        tracing::warn!("the build was no longer this attempt's when it finished; its result is not recorded");
        return Ok(false);
    };
    b.metrics.build_finished("deployed");
    let pointer = set_latest(b, &deployed).await?;
    let data = json!({ "previewUrl": pointer.preview_url, "metrics": deployed.metrics });
    emit(b, &deployed, EventType::DeployCompleted, data);
    tracing::info!(
        total_ms = deployed.metrics.total_ms,
        files = deployed.metrics.file_count,
        "build deployed"
    );
    Ok(true)
}

/// Records a failed attempt (its last, or one whose failure is the project's); `false` when it
/// was no longer the build's current attempt and nothing was recorded.
pub(super) async fn record_failure(
    b: &Builder,
    version: &Version,
    mut failure: Failure,
    metrics: &Metrics,
) -> anyhow::Result<bool> {
    if failure.cause == Cause::Infra {
        failure.message = format!(
            "infrastructure error on the last attempt ({} of {}): {}",
            version.attempts, b.settings.fleet.max_attempts, failure.message
        );
    }
    tracing::info!(step = %failure.step, code = failure.code, diagnostics = failure.diagnostics_total,
        error = %failure.message, "build failed");
    let failed = versions::Failed {
        step: failure.step,
        error: &failure.message,
        code: failure.code,
        diagnostics: &failure.diagnostics,
        diagnostics_total: failure.diagnostics_total,
        framework: failure.framework,
        node_version: b.toolchain.node.as_deref(),
        pnpm_version: b.toolchain.pnpm.as_deref(),
    };
    let recorded = patiently("recording the failure", RECORD_PATIENCE, || {
        versions::mark_failed(&b.db, version.id, Some(version.attempts), &failed, metrics)
    })
    .await?;
    if recorded {
        b.metrics.build_finished("failed");
        emit(b, version, EventType::BuildFailed, failed.event_data());
    }
    Ok(recorded)
}

/// An attempt that hit an infrastructure error: said in the log and as a `build_retrying`
/// event, then, after [`retry_backoff`] (a cancel cuts it short), the build goes back to the
/// queue, still holding its project's slot, for any daemon to try again.
pub(super) async fn retry_later(
    b: &Builder,
    job: &Job,
    version: &Version,
    failure: &Failure,
    log: &BuildLog,
    shipper: LogShipper,
    stopper: &Stopper,
) -> anyhow::Result<()> {
    let backoff = retry_backoff(version.attempts);
    let max = b.settings.fleet.max_attempts;
    tracing::warn!(step = %failure.step, error = %failure.message, retry_in_ms = backoff.as_millis() as u64,
        "infrastructure error: the build goes back to the queue");
    b.metrics.retried(failure.step.as_str());
    log.line(&format!(
        "[kiln] infrastructure error at the {} step (attempt {} of {max}): {}; trying again in {} s",
        failure.step,
        version.attempts,
        failure.message,
        backoff.as_secs_f64()
    ));
    let data = json!({
        "step": failure.step,
        "reason": failure.message,
        "attempt": version.attempts,
        "maxAttempts": max,
        "retryInMs": backoff.as_millis() as u64,
    });
    emit(b, version, EventType::BuildRetrying, data);
    log.close_live();
    shipper.flush().await;
    tokio::select! {
        () = stopper.token().cancelled() => {}
        () = tokio::time::sleep(backoff) => {}
    }
    if stopper.reason() == Some(Stop::LeaseLost) {
        return Ok(());
    }
    // Also when it was cancelled meanwhile: hand_back then finds it so and acks the entry.
    hand_back(b, job, version).await
}

/// Observes the phases of an attempt whose outcome this daemon recorded.
pub(super) fn observe(b: &Builder, metrics: &Metrics, attempt_started: StdInstant) {
    b.metrics.phases_ms(&[
        (Phase::Generate, metrics.generate_ms),
        (Phase::Install, metrics.install_ms),
        (Phase::Check, metrics.check_ms),
        (Phase::Build, metrics.build_ms),
        (Phase::Upload, metrics.upload_ms),
    ]);
    b.metrics.phase(Phase::Total, attempt_started.elapsed());
}

/// Frees the build's project for its next build (if this build still holds it).
pub(super) async fn release(b: &Builder, version: &Version) -> anyhow::Result<()> {
    b.queue
        .release(&version.id.to_string(), &version.user_id, &version.project_id)
        .await?;
    Ok(())
}

/// Acknowledges a finished job, once its events are recorded too.
pub(super) async fn done_with(b: &Builder, job: &Job) -> anyhow::Result<()> {
    b.events.flush().await;
    b.queue.ack(b.consumer(), &job.entry_id).await?;
    Ok(())
}

/// Starts an attempt's log after the lines earlier attempts streamed.
pub(super) async fn resume_log(b: &Builder, version: &Version, log: &BuildLog) {
    resume_log_lines(b, version.id, log).await;
    log.line(&format!(
        "[kiln] attempt {} on {}: the builder of the previous attempt was lost or shut down; starting over",
        version.attempts,
        b.consumer()
    ));
}

/// Gives a drained attempt's build back to the queue: queued again (not failed), as a new
/// stream entry any daemon may read.
pub(super) async fn hand_back(b: &Builder, job: &Job, version: &Version) -> anyhow::Result<()> {
    let handed = patiently("handing the build back", RECORD_PATIENCE, || {
        versions::hand_back(&b.db, version.id, version.attempts)
    });
    if !handed.await? {
        // Cancelled meanwhile (then the entry is done with), or taken over (then it is not ours).
        if versions::attempt_of(&b.db, version.id)
            .await?
            .is_some_and(|(status, _)| status.is_final())
        {
            b.queue.ack(b.consumer(), &job.entry_id).await?;
        }
        return Ok(());
    }
    b.events.flush().await;
    if !b.queue.hand_back(b.consumer(), job, false).await? {
        tracing::warn!("the build's entry was reclaimed before it could be handed back");
    }
    tracing::info!("build handed back to the queue");
    Ok(())
}

/// The step a build had reached, from its newest event (for a build whose builders were lost).
fn step_after(last: Option<EventType>) -> Step {
    match last {
        None | Some(EventType::BuildQueued | EventType::BuildRetrying) => Step::Queue,
        Some(EventType::BuildStarted) => Step::Fetch,
        Some(EventType::GenerateStarted) => Step::Generate,
        Some(EventType::GenerateCompleted | EventType::InstallStarted) => Step::Install,
        Some(EventType::InstallCompleted | EventType::InstallSkipped | EventType::CheckStarted) => {
            Step::Check
        }
        Some(EventType::CheckCompleted | EventType::BuildStepStarted) => Step::Build,
        Some(EventType::BuildStepCompleted) => Step::Output,
        Some(EventType::UploadStarted | EventType::UploadCompleted) => Step::Upload,
        Some(_) => Step::Record,
    }
}

/// A build whose builders were lost `KILN_MAX_ATTEMPTS` times: failed, with its log and final
/// event, its slot released.
pub(super) async fn give_up(b: &Builder, job: &Job, version: &Version) -> anyhow::Result<()> {
    let id = version.id;
    let last = events::latest(&b.db, id).await?.map(|e| e.kind);
    if let Some(failed) = versions::fail_lost(&b.db, id, step_after(last)).await? {
        let reason = failed.error.clone().unwrap_or_default();
        tracing::warn!(build_id = %id, error = %reason, "build failed: its builders were lost");
        let log = BuildLog::with(b.settings.builder.max_log_bytes, b.redactor.clone(), None);
        resume_log_lines(b, id, &log).await;
        log.line(&format!("[kiln] {reason}: the build failed"));
        if let Err(e) = b.artifacts.put_log(id, Bytes::from(log.bytes())).await {
            tracing::warn!(error = %e, "cannot store the build log");
        }
        let end = log.last_line();
        let note = (end, format!("[kiln] {reason}: the build failed"));
        if let Err(e) = async {
            b.live_logs.append(id, &[note]).await?;
            b.live_logs.finish(id, end).await
        }
        .await
        {
            tracing::warn!(error = %e, "cannot end the live log");
        }
        let data = json!({ "step": failed.failed_step, "reason": reason });
        b.events.emit(id, None, EventType::BuildFailed, data);
        b.metrics.build_finished("failed");
    }
    release(b, version).await?;
    done_with(b, job).await?;
    Ok(())
}

/// Puts the lines earlier attempts streamed at the start of `log`.
async fn resume_log_lines(b: &Builder, id: VersionId, log: &BuildLog) {
    match b.live_logs.all(id).await {
        Ok(entries) => log.resume(entries.into_iter().filter_map(|e| match e {
            LogEntry::Line { n, text } => Some((n, text)),
            LogEntry::End => None,
        })),
        Err(e) => tracing::warn!(error = %e, "cannot read the earlier attempts' log"),
    }
}

/// A reclaimed build that had already ended: its builder died between recording the outcome
/// and finishing up. Writes what is missing (the final event, the latest pointer), releases
/// the slot and acks.
pub(super) async fn settle(b: &Builder, job: &Job, version: &Version) -> anyhow::Result<()> {
    let id = version.id;
    let last = events::latest(&b.db, id).await?;
    if !last.as_ref().is_some_and(|e| e.kind.is_final()) {
        let (kind, data) = match version.status {
            BuildStatus::Deployed => (
                EventType::DeployCompleted,
                json!({ "previewUrl": b.urls.version_url(id), "metrics": version.metrics }),
            ),
            BuildStatus::Cancelled => (EventType::BuildCancelled, json!({})),
            BuildStatus::Superseded => (
                EventType::BuildSuperseded,
                json!({ "supersededBy": version.superseded_by }),
            ),
            _ => (
                EventType::BuildFailed,
                json!({ "step": version.failed_step, "reason": version.error }),
            ),
        };
        tracing::info!(build_id = %id, event = %kind, "writing the final event a lost builder did not");
        b.events.emit(id, None, kind, data);
    }
    let holder = b.queue.inflight(&version.user_id, &version.project_id).await?;
    if holder.as_deref() == Some(id.to_string().as_str()) {
        if version.status == BuildStatus::Deployed {
            set_latest(b, version).await?;
        }
        release(b, version).await?;
    }
    done_with(b, job).await?;
    Ok(())
}

async fn set_latest(b: &Builder, deployed: &Version) -> anyhow::Result<LatestPointer> {
    let pointer = LatestPointer {
        latest_version_id: deployed.id,
        preview_url: b.urls.version_url(deployed.id),
        timestamp: deployed.finished_at.unwrap_or_else(chrono::Utc::now),
    };
    b.queue
        .set_latest(&deployed.user_id, &deployed.project_id, &pointer)
        .await?;
    Ok(pointer)
}

/// Hands an event of this attempt to the daemon's recorder ([`crate::events::EventSink`]).
pub(super) fn emit(b: &Builder, attempt: &Version, kind: EventType, data: serde_json::Value) {
    b.running.saw(attempt.id, kind);
    b.events.emit(attempt.id, Some(attempt.attempts), kind, data);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::retry_backoff;

    #[test]
    fn the_retry_backoff_doubles_up_to_a_minute() {
        let secs: Vec<u64> = [0, 1, 2, 3, 6, 7, 8, 100]
            .map(|a| retry_backoff(a).as_secs())
            .to_vec();
        assert_eq!(secs, [1, 1, 2, 4, 32, 60, 60, 60]);
        assert_eq!(retry_backoff(i32::MAX), Duration::from_secs(60));
    }
}
