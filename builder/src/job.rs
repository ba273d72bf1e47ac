//! One build, from claim to record.

use std::sync::Arc;
use std::time::Instant as StdInstant;

use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use kiln_shared::db::versions::{self, Deployed, Metrics, TakeOver, Version};
use kiln_shared::db::{events, patiently};
use kiln_shared::domain::{BuildStatus, EventType, Step, VersionId};
use kiln_shared::metrics::Phase;
use kiln_shared::redis::{Job, LatestPointer, LogEntry};
use kiln_shared::store::{Artifacts, Manifest, ManifestKind, StoreError};
use serde_json::json;
use tokio::time::Instant;
use tracing::Instrument;

use crate::context::Builder;
use crate::lease::{Claim, Keeper, Stop, Stopper};
use crate::log::{BuildLog, LogShipper};
use crate::process::{self, Invocation, RunError, StepEnv};
use crate::publish::{self, PublishError};
use crate::sandbox::{Cell, Confinement, Network};
use crate::workspace::{LayOutError, Workspace};
use crate::{detect, generator, scripts};

const LOCKFILE: &str = "pnpm-lock.yaml";
/// How long a finished attempt waits for an unreachable Postgres to record its outcome. Its
/// claim is renewed meanwhile (in Redis), so nobody else takes the build; past this the
/// attempt gives up, and the build is taken over once its claim lapses.
const RECORD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);
const ERROR_TAIL_LINES: usize = 25;

/// Why an attempt failed: the station, a message for the user, and whose fault it was.
#[derive(Debug)]
pub struct Failure {
    pub step: Step,
    pub message: String,
    pub cause: Cause,
}

/// Whose fault a failure is, which decides what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The project's (a script that fails, no output, over a limit): the build fails at once;
    /// running it again would fail again.
    User,
    /// The farm's (the artifact store unreachable, a full disk, a tool that cannot start): the
    /// attempt goes back to the queue after a backoff, up to `KILN_MAX_ATTEMPTS` attempts.
    Infra,
}

/// A failure of the project's own making.
fn fail(step: Step, message: impl Into<String>) -> Failure {
    Failure {
        step,
        message: message.into(),
        cause: Cause::User,
    }
}

/// A failure of the farm's making.
fn infra(step: Step, message: impl Into<String>) -> Failure {
    Failure {
        step,
        message: message.into(),
        cause: Cause::Infra,
    }
}

/// A store error: the farm's when it may pass (I/O, an unreachable service), else final
/// (a missing or corrupt object does not come back by itself).
fn store_failure(step: Step, e: &StoreError) -> Failure {
    if e.is_transient() {
        infra(step, e.to_string())
    } else {
        fail(step, e.to_string())
    }
}

/// How long an attempt that hit an infrastructure error waits before going back to the queue:
/// 1 s after the first attempt, then doubling, at most [`MAX_RETRY_BACKOFF`].
pub fn retry_backoff(attempt: i32) -> std::time::Duration {
    let exp = attempt.clamp(1, 16) as u32 - 1;
    (RETRY_BACKOFF_BASE * 2u32.pow(exp)).min(MAX_RETRY_BACKOFF)
}

const RETRY_BACKOFF_BASE: std::time::Duration = std::time::Duration::from_secs(1);
const MAX_RETRY_BACKOFF: std::time::Duration = std::time::Duration::from_secs(60);

struct Success {
    /// The source tree, when the build changed it (the lockfile pnpm wrote).
    sources: Option<Manifest>,
    output_manifest_key: String,
    framework: Option<String>,
    metadata: Option<serde_json::Value>,
}

/// Runs a claimed job to its recorded outcome, then releases the project's slot and acks.
/// An `Err` is an infrastructure failure: the entry is not acked, so once its claim lapses a
/// daemon (maybe this one) takes the build over as a new attempt.
pub async fn execute(b: &Builder, job: &Job) -> anyhow::Result<VersionId> {
    let id = job.build_id;
    let consumer = b.consumer();
    let version = if job.reclaimed {
        let max = b.settings.fleet.max_attempts as i32;
        let take_over = patiently("taking the build over", b.claim_patience(), || {
            versions::take_over(&b.db, id, consumer, max)
        });
        match take_over.await? {
            TakeOver::Running(v) => {
                tracing::warn!(build_id = %id, attempt = v.attempts, lost = v.lost,
                    "took over a build whose builder was lost");
                b.metrics.reclaimed();
                v
            }
            TakeOver::Exhausted(v) => {
                give_up(b, job, &v).await?;
                return Ok(id);
            }
            TakeOver::Finished(v) => {
                settle(b, job, &v).await?;
                return Ok(id);
            }
            TakeOver::Missing => {
                b.queue.ack(consumer, &job.entry_id).await?;
                return Ok(id);
            }
        }
    } else {
        let start = patiently("starting the build", b.claim_patience(), || {
            versions::start(&b.db, id, consumer)
        });
        let Some(v) = start.await? else {
            tracing::info!(build_id = %id, "build is not queued any more (cancelled, superseded or a duplicate entry); acking");
            b.queue.ack(consumer, &job.entry_id).await?;
            return Ok(id);
        };
        v
    };
    let (stopper, _registered) = b.running.register(id);
    let claim = Claim {
        build: id,
        attempt: version.attempts,
        consumer: consumer.to_owned(),
        entry_id: job.entry_id.clone(),
        user_slot: b
            .settings
            .fleet
            .max_running_per_user
            .map(|cap| (job.user_id.clone(), cap)),
    };
    let _keeper = Keeper::start(
        b.queue.clone(),
        b.db.clone(),
        claim,
        b.settings.fleet.lease,
        stopper.clone(),
    );
    let span = tracing::info_span!("build", build_id = %id, attempt = version.attempts,
        user_id = %version.user_id, project_id = %version.project_id);
    run_attempt(b, job, &version, &stopper).instrument(span).await
}

/// One attempt of a started build, to its recorded outcome (or to its stop).
async fn run_attempt(
    b: &Builder,
    job: &Job,
    version: &Version,
    stopper: &Stopper,
) -> anyhow::Result<VersionId> {
    let id = version.id;
    let attempt_started = StdInstant::now();
    tracing::info!("build started");
    if let (1, Some(started)) = (version.attempts, version.started_at) {
        let waited = (started - version.created_at).to_std().unwrap_or_default();
        b.metrics.phase(Phase::QueueWait, waited);
    }
    emit(
        b,
        version,
        EventType::BuildStarted,
        json!({ "attempt": version.attempts }),
    );
    let (shipper, live) = LogShipper::start(b.live_logs.clone(), id);
    let log = BuildLog::with(b.settings.max_log_bytes, b.redactor.clone(), Some(live));
    if version.attempts > 1 {
        resume_log(b, version, &log).await;
    }
    let mut metrics = Metrics::default();
    let ws = Workspace::new(&b.settings.work_dir, id);
    // Boxed: the build future is large, and worker stacks are not.
    let outcome = Box::pin(build(b, version, &ws, &log, &mut metrics, stopper)).await;
    // The outcome does not wait for the workspace to go (a node_modules tree takes a few
    // hundred milliseconds to delete).
    tokio::spawn(ws.remove());
    match stopper.reason() {
        Some(Stop::LeaseLost) => {
            // Another daemon owns the build now: nothing of this attempt is recorded.
            log.close_live();
            shipper.flush().await;
            tracing::warn!("the build's claim was lost; leaving it to the daemon that took it over");
            return Ok(id);
        }
        Some(Stop::Drained) => {
            b.metrics.handed_back();
            log.line("[kiln] this builder is shutting down: the build goes back to the queue");
            log.close_live();
            shipper.flush().await;
            hand_back(b, job, version).await?;
            return Ok(id);
        }
        Some(Stop::Cancelled) => b.metrics.cancelled(),
        None => {}
    }
    match &outcome {
        Err(failure)
            if failure.cause == Cause::Infra
                && stopper.reason().is_none()
                && version.attempts < b.settings.fleet.max_attempts as i32 =>
        {
            retry_later(b, job, version, failure, &log, shipper, stopper).await?;
            return Ok(id);
        }
        _ => {}
    }
    if let Err(e) = b.artifacts.put_log(id, Bytes::from(log.bytes())).await {
        tracing::warn!(error = %e, "cannot store the build log");
    }
    // The live stream ends once the stored log holds every line.
    log.close_live();
    shipper.flush().await;
    if let Err(e) = b.live_logs.finish(id, log.last_line()).await {
        tracing::warn!(error = %e, "cannot end the live log");
    }
    let recorded = match (stopper.reason(), outcome) {
        // The API recorded the cancel (and its event) and released the slot.
        (Some(_), _) => false,
        (None, Ok(success)) => record_success(b, version, success, &metrics).await?,
        (None, Err(mut failure)) => {
            if failure.cause == Cause::Infra {
                failure.message = format!(
                    "infrastructure error on the last attempt ({} of {}): {}",
                    version.attempts, b.settings.fleet.max_attempts, failure.message
                );
            }
            tracing::info!(step = %failure.step, error = %failure.message, "build failed");
            let failed = patiently("recording the failure", RECORD_PATIENCE, || {
                versions::mark_failed(
                    &b.db,
                    id,
                    Some(version.attempts),
                    failure.step,
                    &failure.message,
                    &metrics,
                )
            })
            .await?;
            if failed {
                b.metrics.build_finished("failed");
                let data = json!({ "step": failure.step, "reason": failure.message });
                emit(b, version, EventType::BuildFailed, data);
            }
            failed
        }
    };
    if recorded {
        observe(b, &metrics, attempt_started);
        release(b, version).await?;
    } else if let Some((status, attempt)) = versions::attempt_of(&b.db, id).await? {
        if !status.is_final() && attempt != version.attempts {
            tracing::warn!("another attempt took the build over; this one's result is not recorded");
            return Ok(id);
        }
        tracing::info!(%status, "the build ended elsewhere (cancelled); its result is not recorded");
    }
    done_with(b, job).await?;
    Ok(id)
}

/// An attempt that hit an infrastructure error: said in the log and as a `build_retrying`
/// event, then, after [`retry_backoff`] (a cancel cuts it short), the build goes back to the
/// queue, still holding its project's slot, for any daemon to try again.
async fn retry_later(
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
fn observe(b: &Builder, metrics: &Metrics, attempt_started: StdInstant) {
    b.metrics.phases_ms(&[
        (Phase::Generate, metrics.generate_ms),
        (Phase::Install, metrics.install_ms),
        (Phase::Build, metrics.build_ms),
        (Phase::Upload, metrics.upload_ms),
    ]);
    b.metrics.phase(Phase::Total, attempt_started.elapsed());
}

/// Frees the build's project for its next build (if this build still holds it).
async fn release(b: &Builder, version: &Version) -> anyhow::Result<()> {
    b.queue
        .release(&version.id.to_string(), &version.user_id, &version.project_id)
        .await?;
    Ok(())
}

/// Acknowledges a finished job, once its events are recorded too.
async fn done_with(b: &Builder, job: &Job) -> anyhow::Result<()> {
    b.events.flush().await;
    b.queue.ack(b.consumer(), &job.entry_id).await?;
    Ok(())
}

/// Starts an attempt's log after the lines earlier attempts streamed.
async fn resume_log(b: &Builder, version: &Version, log: &BuildLog) {
    resume_log_lines(b, version.id, log).await;
    log.line(&format!(
        "[kiln] attempt {} on {}: the builder of the previous attempt was lost or shut down; starting over",
        version.attempts,
        b.consumer()
    ));
}

/// Gives a drained attempt's build back to the queue: queued again (not failed), as a new
/// stream entry any daemon may read.
async fn hand_back(b: &Builder, job: &Job, version: &Version) -> anyhow::Result<()> {
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
        Some(EventType::InstallCompleted | EventType::BuildStepStarted) => Step::Build,
        Some(EventType::BuildStepCompleted) => Step::Output,
        Some(EventType::UploadStarted | EventType::UploadCompleted) => Step::Upload,
        Some(_) => Step::Record,
    }
}

/// A build whose builders were lost `KILN_MAX_ATTEMPTS` times: failed, with its log and final
/// event, its slot released.
async fn give_up(b: &Builder, job: &Job, version: &Version) -> anyhow::Result<()> {
    let id = version.id;
    let last = events::latest(&b.db, id).await?.map(|e| e.kind);
    if let Some(failed) = versions::fail_lost(&b.db, id, step_after(last)).await? {
        let reason = failed.error.clone().unwrap_or_default();
        tracing::warn!(build_id = %id, error = %reason, "build failed: its builders were lost");
        let log = BuildLog::with(b.settings.max_log_bytes, b.redactor.clone(), None);
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
async fn settle(b: &Builder, job: &Job, version: &Version) -> anyhow::Result<()> {
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

/// Records a successful attempt; `false` when it was no longer the build's current attempt
/// (cancelled, or taken over) and nothing was recorded.
async fn record_success(
    b: &Builder,
    version: &Version,
    s: Success,
    metrics: &Metrics,
) -> anyhow::Result<bool> {
    let deployed = Deployed {
        sources: s.sources.as_ref(),
        output_manifest_key: &s.output_manifest_key,
        framework: s.framework.as_deref(),
        node_version: b.toolchain.node.as_deref(),
        pnpm_version: b.toolchain.pnpm.as_deref(),
        metadata: s.metadata.as_ref(),
        metrics,
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

/// Hands an event of this attempt to the daemon's recorder ([`crate::events::EventSink`]).
pub(crate) fn emit(b: &Builder, attempt: &Version, kind: EventType, data: serde_json::Value) {
    b.running.saw(attempt.id, kind);
    b.events.emit(attempt.id, Some(attempt.attempts), kind, data);
}

fn ms_since(t: StdInstant) -> Option<i64> {
    Some(t.elapsed().as_millis() as i64)
}

/// Runs the build in a cell of its own (its cgroup, removed at the end whatever happened).
async fn build(
    b: &Builder,
    version: &Version,
    ws: &Workspace,
    log: &BuildLog,
    metrics: &mut Metrics,
    stopper: &Stopper,
) -> Result<Success, Failure> {
    // A warm sandbox for the install, unless the build runs the operator's generator first
    // (its cgroup would hold the generator's processes before the install's).
    let warm = match &b.warm {
        Some(pool) if !version.generate => pool.take(),
        _ => None,
    };
    let cell = match warm {
        Some(warm) => Cell::warm(warm, ws.root()),
        None => {
            let name = format!("{}-{}", version.id, ulid::Ulid::new());
            b.confinement
                .cell(&name, ws.root())
                .map_err(|e| infra(Step::Fetch, format!("preparing the build's sandbox: {e}")))?
        }
    };
    let cell = std::sync::Arc::new(cell);
    let env = StepEnv::new(
        &ws.home(),
        &ws.tmp(),
        // The build's own: the shared metadata cache is the store's user's alone.
        &ws.home().join(".cache").join("pnpm"),
        b.settings.build_timeout.as_secs(),
    )
    .stopped_by(stopper.token().clone(), b.settings.fleet.cancel_grace)
    .confined(
        b.confinement.clone(),
        cell.clone(),
        b.settings.max_log_bytes as u64,
    )
    .counted_by(b.metrics.clone());
    let result = build_in(b, version, ws, log, metrics, &env, cell.ids()).await;
    match (cell.unused_warm(), &b.warm) {
        // No process ran: the warm sandbox and its cgroup serve another build.
        (Some(warm), Some(pool)) => pool.give_back(warm),
        _ => {
            if let Some(cgroup) = &cell.cgroup {
                cgroup.remove().await;
            }
        }
    }
    result
}

/// Gives the workspace, as Kiln wrote it, to the build's user `ids`.
async fn hand_over(ws: &Workspace, ids: Option<(u32, u32)>, step: Step) -> Result<(), Failure> {
    let root = ws.root().to_owned();
    on_disk(step, "handing the workspace to the build user", move || {
        Confinement::hand_over(&root, ids)
    })
    .await
}

/// Runs `work` on the workspace's files in the blocking pool; its error is the farm's, at
/// `step`, saying `what` it was doing.
async fn on_disk<T: Send + 'static>(
    step: Step,
    what: &'static str,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| infra(step, e.to_string()))?
        .map_err(|e| infra(step, format!("{what}: {e}")))
}

async fn build_in(
    b: &Builder,
    version: &Version,
    ws: &Workspace,
    log: &BuildLog,
    metrics: &mut Metrics,
    env: &StepEnv,
    ids: Option<(u32, u32)>,
) -> Result<Success, Failure> {
    let deadline = Instant::now() + b.settings.build_timeout;
    let project = ws.project();

    // fetch
    let mut sources = version
        .sources(&b.artifacts)
        .await
        .map_err(|e| store_failure(Step::Fetch, &e))?;
    let original_sources = sources.clone();
    let fetched_package_json = materialize(b, version, &sources, ws, ids).await?;

    // generate
    let mut metadata = None;
    if version.generate {
        let started = StdInstant::now();
        emit(b, version, EventType::GenerateStarted, json!({}));
        let command = b.settings.generator_cmd.as_deref().ok_or_else(|| {
            fail(
                Step::Generate,
                "this builder has no generator configured (KILN_GENERATOR_CMD)",
            )
        })?;
        let mut files = Vec::with_capacity(sources.files.len());
        // Read beneath the project folder, each bounded by the larger of its size in the manifest
        // and KILN_MAX_FILE_MB.
        let wanted: Vec<(String, u64)> = sources
            .files
            .iter()
            .map(|(path, entry)| (path.clone(), entry.size.max(b.settings.max_file_bytes as u64)))
            .collect();
        let dir = project.clone();
        let read = tokio::task::spawn_blocking(move || {
            let fd = crate::beneath::open_dir_path(&dir)?;
            wanted
                .into_iter()
                .map(|(path, max)| {
                    crate::beneath::read_beneath(&fd, &path, max)?
                        .map(|content| (path.clone(), content))
                        .ok_or(crate::beneath::BeneathError::Missing { path })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| infra(Step::Generate, e.to_string()))?
        .map_err(|e| beneath_failure(Step::Generate, format!("reading the sources: {e}"), &e))?;
        for (path, content) in &read {
            files.push(generator::file_json(path, content));
        }
        let input = serde_json::json!({
            "prompt": version.prompt,
            "userId": version.user_id,
            "projectId": version.project_id,
            "files": files,
        });
        let (generated, meta) = generator::generate(
            command,
            &env.with_network(Network::Host),
            &project,
            deadline,
            log,
            input,
            b.settings.file_limits(),
        )
        .await
        .map_err(|e| fail(Step::Generate, e))?;
        // Written by the daemon beneath the project folder, through no link the generator may
        // have left, and owned by the build's user.
        let generated: Vec<(String, Bytes)> = generated
            .into_iter()
            .map(|file| (file.path.as_str().to_owned(), Bytes::from(file.content)))
            .collect();
        let (dir, to_write) = (project.clone(), generated.clone());
        tokio::task::spawn_blocking(move || {
            let fd = crate::beneath::open_dir_path(&dir)?;
            to_write
                .iter()
                .try_for_each(|(path, content)| crate::beneath::write_beneath(&fd, path, content, ids))
        })
        .await
        .map_err(|e| infra(Step::Generate, e.to_string()))?
        .map_err(|e| beneath_failure(Step::Generate, format!("writing the generated files: {e}"), &e))?;
        for (path, content) in generated {
            let blob = b
                .artifacts
                .put_blob(content)
                .await
                .map_err(|e| store_failure(Step::Generate, &e))?;
            sources.insert_stored(&path, blob);
        }
        metadata = Some(meta);
        metrics.generate_ms = ms_since(started);
        emit(
            b,
            version,
            EventType::GenerateCompleted,
            json!({ "ms": metrics.generate_ms }),
        );
    }

    // install + build
    // As fetched, unless the generator wrote the tree.
    let package_json = if version.generate {
        read_in_project(&project, "package.json", b.settings.max_file_bytes as u64)
            .await
            .map_err(|e| fail(Step::Install, reading(&e)))?
    } else {
        fetched_package_json
    };
    let (output_root, framework) = if let Some(raw) = package_json {
        let pkg: serde_json::Value = serde_json::from_slice(&raw)
            .map_err(|e| fail(Step::Install, format!("package.json is not valid JSON: {e}")))?;
        let frozen =
            sources.files.contains_key(LOCKFILE) && package_json_unchanged(b, version, &sources).await;
        let install = scripts::install_args(&b.settings.pnpm_store, frozen);
        let install: Vec<&str> = install.iter().map(String::as_str).collect();
        let started = StdInstant::now();
        emit(
            b,
            version,
            EventType::InstallStarted,
            json!({ "frozenLockfile": frozen }),
        );
        if version.generate {
            // The generator's process may have left a `node_modules` of links (into the store,
            // which the store's half can write): the install starts without one. Then its
            // files, written by the daemon, go to the build's user.
            let (root, modules) = (ws.root().to_owned(), project.join("node_modules"));
            on_disk(
                Step::Install,
                "preparing the generator's tree for the install",
                move || {
                    match std::fs::remove_dir_all(&modules) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    }
                    Confinement::hand_over(&root, ids)
                },
            )
            .await?;
        }
        // The store's half: pnpm alone, no code of the project's or its dependencies'.
        run_step(
            Step::Install,
            &env.as_store().with_network(Network::Registry),
            "pnpm",
            &install,
            &project,
            deadline,
            log,
        )
        .await?;
        let (confinement, root) = (b.confinement.clone(), project.clone());
        on_disk(
            Step::Install,
            "handing the installed tree to the build's user",
            move || confinement.take_back(&root, ids),
        )
        .await?;
        // The build's half: lifecycle scripts and allowed dependency scripts, as the build's
        // own uid, when there are any to run.
        if let Some(why) = scripts::pending(&project, &pkg, &b.settings.sandbox.allow_build_scripts)
            .await
            .map_err(|e| fail(Step::Install, e))?
        {
            log.line(&format!("[kiln] running install scripts: {why}"));
            let rebuild = scripts::rebuild_args(&b.confinement.allowed_scripts());
            let rebuild: Vec<&str> = rebuild.iter().map(String::as_str).collect();
            run_step(
                Step::Install,
                &env.with_network(Network::Registry),
                "pnpm",
                &rebuild,
                &project,
                deadline,
                log,
            )
            .await?;
        }
        metrics.install_ms = ms_since(started);
        emit(
            b,
            version,
            EventType::InstallCompleted,
            json!({ "ms": metrics.install_ms, "frozenLockfile": frozen }),
        );
        let lockfile = keep_lockfile(&b.artifacts, &project, &mut sources).await?;
        if let Some(auditor) = &b.auditor {
            audit(auditor, b.settings.audit.mode, lockfile, log).await?;
        }

        let started = StdInstant::now();
        emit(b, version, EventType::BuildStepStarted, json!({}));
        if pkg.pointer("/scripts/build").is_some() {
            run_step(
                Step::Build,
                env,
                "pnpm",
                &["run", "build"],
                &project,
                deadline,
                log,
            )
            .await?;
        } else {
            log.line("[kiln] package.json has no build script; publishing the output folder as is");
        }
        metrics.build_ms = ms_since(started);
        emit(
            b,
            version,
            EventType::BuildStepCompleted,
            json!({ "ms": metrics.build_ms }),
        );
        let project_fd = crate::beneath::open_dir_path(&project)
            .map_err(|e| beneath_failure(Step::Output, e.to_string(), &e))?;
        let dir = detect::output_dir(&project_fd, &pkg).map_err(|e| fail(Step::Output, e))?;
        (
            Some(dir),
            detect::framework_of(&pkg).map(|(name, _)| name.to_owned()),
        )
    } else {
        log.line("[kiln] no package.json: publishing the tree as a static site");
        (None, Some("static".to_owned()))
    };

    // upload
    let started = StdInstant::now();
    emit(b, version, EventType::UploadStarted, json!({}));
    let limits = publish::OutputLimits {
        max_bytes: b.settings.max_output_bytes,
        max_files: b.settings.max_output_files,
    };
    // The output folder is opened beneath the project folder (itself not a link): a link
    // there leading out of the project fails the build, whatever the build made it.
    let dir = project.clone();
    let files = tokio::task::spawn_blocking(move || {
        let project = crate::beneath::open_dir_path(&dir)
            .map_err(|e| beneath_failure(Step::Output, e.to_string(), &e))?;
        let root = match output_root {
            Some(name) => crate::beneath::open_dir_beneath(&project, name)
                .map_err(|e| beneath_failure(Step::Output, format!("the output folder {e}"), &e))?,
            None => project,
        };
        publish::collect(root, limits, &["node_modules"]).map_err(|e| {
            if e.is_the_outputs() {
                fail(Step::Output, e.to_string())
            } else {
                publish_failure(e)
            }
        })
    })
    .await
    .map_err(|e| infra(Step::Output, e.to_string()))??;
    if files.is_empty() {
        return Err(fail(Step::Output, PublishError::Empty.to_string()));
    }
    let (output, new_blobs) = publish::upload(&b.artifacts, files)
        .await
        .map_err(publish_failure)?;
    let output_key = Artifacts::manifest_key(version.id, ManifestKind::Output);
    b.artifacts
        .put_manifest(&output_key, &output)
        .await
        .map_err(|e| store_failure(Step::Upload, &e))?;
    metrics.upload_ms = ms_since(started);
    emit(
        b,
        version,
        EventType::UploadCompleted,
        json!({ "files": output.files.len(), "bytes": output.total_bytes() }),
    );
    metrics.output_bytes = Some(output.total_bytes() as i64);
    metrics.file_count = Some(output.files.len() as i32);
    tracing::info!(files = output.files.len(), new_blobs, "output stored");
    Ok(Success {
        sources: (sources != original_sources).then_some(sources),
        output_manifest_key: output_key,
        framework,
        metadata,
    })
}

/// An upload that failed: the store's fault when it could not write, else the output's (a file
/// that cannot be read).
fn publish_failure(e: PublishError) -> Failure {
    match &e {
        PublishError::Store(store) => store_failure(Step::Upload, store),
        _ => fail(Step::Upload, e.to_string()),
    }
}

/// The dependency audit of the installed lockfile (`None`: there is none): findings to the
/// log; with `KILN_AUDIT=fail`, critical ones fail the build at step `audit`.
async fn audit(
    auditor: &Arc<crate::audit::Auditor>,
    mode: kiln_shared::config::AuditMode,
    lockfile: Option<Bytes>,
    log: &BuildLog,
) -> Result<(), Failure> {
    use crate::audit::lockfile::MAX_LOCKFILE_BYTES;
    let text = match lockfile {
        None => {
            log.line("[kiln] audit: no pnpm-lock.yaml (no dependencies), nothing to check");
            return Ok(());
        }
        Some(raw) if raw.len() > MAX_LOCKFILE_BYTES => {
            return Err(fail(
                Step::Audit,
                format!(
                    "pnpm-lock.yaml is {} MB, over the audit's {} MB",
                    raw.len() / (1024 * 1024),
                    MAX_LOCKFILE_BYTES / (1024 * 1024)
                ),
            ));
        }
        Some(raw) => String::from_utf8_lossy(&raw).into_owned(),
    };
    let auditor = auditor.clone();
    let report = tokio::task::spawn_blocking(move || auditor.audit(&text))
        .await
        .map_err(|e| infra(Step::Audit, e.to_string()))?
        .map_err(|e| infra(Step::Audit, e.to_string()))?;
    for line in &report.lines {
        log.line(line);
    }
    if mode == kiln_shared::config::AuditMode::Fail && !report.critical.is_empty() {
        return Err(fail(
            Step::Audit,
            format!(
                "dependency audit: {} critical {}: {}",
                report.critical.len(),
                if report.critical.len() == 1 {
                    "advisory"
                } else {
                    "advisories"
                },
                report.critical.join(" | ")
            ),
        ));
    }
    Ok(())
}

/// Runs one untrusted step; a non-zero exit fails the build at `step` with the log's tail.
async fn run_step(
    step: Step,
    env: &StepEnv,
    program: &str,
    args: &[&str],
    cwd: &std::path::Path,
    deadline: Instant,
    log: &BuildLog,
) -> Result<(), Failure> {
    let invocation = Invocation {
        program,
        args,
        cwd,
        stdin: None,
    };
    let status = process::run(env, invocation, deadline, log)
        .await
        .map_err(|e| match e {
            // Kiln could not run the tool at all: the builder's fault, not the project's.
            RunError::Spawn { .. } | RunError::Wait { .. } => infra(step, e.to_string()),
            _ => fail(step, e.to_string()),
        })?;
    if status.success() {
        return Ok(());
    }
    let what = match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_owned(),
    };
    Err(fail(
        step,
        format!(
            "`{program} {}` {what}:\n{}",
            args.join(" "),
            log.tail(ERROR_TAIL_LINES)
        ),
    ))
}

/// Lays the workspace out with a manifest's files and gives it to the build user; returns
/// package.json's bytes when the manifest has one.
///
/// The files kept inline in the manifest (small text: all of a typical project's sources) are
/// written with the workspace's folders, and handed over when there is nothing else, in one
/// trip to the blocking pool. Blobs are then fetched 16 at a time, each written as it arrives,
/// and the hand-over comes last.
async fn materialize(
    b: &Builder,
    version: &Version,
    manifest: &Manifest,
    ws: &Workspace,
    ids: Option<(u32, u32)>,
) -> Result<Option<Bytes>, Failure> {
    let (mut inline, mut stored) = (Vec::new(), Vec::new());
    for (path, entry) in &manifest.files {
        match &entry.inline {
            Some(text) => inline.push((path.clone(), Bytes::from(text.clone().into_bytes()))),
            None => stored.push((path.clone(), entry.clone())),
        }
    }
    let mut package_json = inline
        .iter()
        .find(|(path, _)| path == "package.json")
        .map(|(_, content)| content.clone());
    let laid_out = |e: LayOutError| infra(Step::Fetch, e.to_string());
    let first_attempt = version.attempts == 1;
    if stored.is_empty() {
        ws.lay_out(inline, first_attempt, move |root| {
            Confinement::hand_over(root, ids)
        })
        .await
        .map_err(laid_out)?;
        return Ok(package_json);
    }
    ws.lay_out(inline, first_attempt, |_| Ok(()))
        .await
        .map_err(laid_out)?;
    let project = ws.project();
    let writes = stored.into_iter().map(|(path, entry)| {
        let (artifacts, project) = (b.artifacts.clone(), project.clone());
        async move {
            let body = artifacts
                .read(&entry)
                .await
                .map_err(|e| store_failure(Step::Fetch, &e))?;
            Workspace::write_into(&project, &path, body.clone())
                .await
                .map_err(|e| infra(Step::Fetch, format!("writing {path}: {e}")))?;
            Ok::<_, Failure>((path == "package.json").then_some(body))
        }
    });
    let mut written = stream::iter(writes).buffer_unordered(16);
    while let Some(found) = written.try_next().await? {
        package_json = package_json.or(found);
    }
    hand_over(ws, ids, Step::Fetch).await?;
    Ok(package_json)
}

/// True when package.json is the same as in the parent version, so the kept lockfile still
/// describes the dependencies and the install can be frozen.
async fn package_json_unchanged(b: &Builder, version: &Version, sources: &Manifest) -> bool {
    let Some(parent) = version.parent_version_id else {
        return false;
    };
    let Ok(Some(parent)) = versions::get(&b.db, parent).await else {
        return false;
    };
    let Ok(parent_sources) = parent.sources(&b.artifacts).await else {
        return false;
    };
    let hash = |m: &Manifest| m.files.get("package.json").map(|e| e.hash.clone());
    hash(&parent_sources).is_some() && hash(&parent_sources) == hash(sources)
}

/// Keeps the lockfile the install wrote with the version's sources, so the next build of the
/// project installs exactly the same dependencies. The install's code wrote it: it is read
/// beneath the project folder, as a regular file of at most
/// [`MAX_LOCKFILE_BYTES`](crate::audit::lockfile::MAX_LOCKFILE_BYTES) (a link out of the
/// project, a FIFO or a larger file fails the build at `install`).
async fn keep_lockfile(
    artifacts: &Artifacts,
    project: &std::path::Path,
    sources: &mut Manifest,
) -> Result<Option<Bytes>, Failure> {
    use crate::audit::lockfile::MAX_LOCKFILE_BYTES;
    let read = read_in_project(project, LOCKFILE, MAX_LOCKFILE_BYTES as u64).await;
    let Some(body) = read.map_err(|e| beneath_failure(Step::Install, reading(&e), &e))? else {
        return Ok(None);
    };
    let hash = kiln_shared::store::sha256_hex(&body);
    if sources.files.get(LOCKFILE).is_some_and(|e| e.hash == hash) {
        return Ok(Some(body));
    }
    let blob = artifacts
        .put_blob(body.clone())
        .await
        .map_err(|e| store_failure(Step::Install, &e))?;
    sources.insert_stored(LOCKFILE, blob);
    Ok(Some(body))
}

/// The file `rel` of the project folder at `project`, read beneath it, at most `max_bytes`
/// (`None`: there is none). See [`crate::beneath::read_beneath`].
async fn read_in_project(
    project: &std::path::Path,
    rel: &'static str,
    max_bytes: u64,
) -> Result<Option<Bytes>, crate::beneath::BeneathError> {
    let project = project.to_owned();
    tokio::task::spawn_blocking(move || {
        let fd = crate::beneath::open_dir_path(&project)?;
        crate::beneath::read_beneath(&fd, rel, max_bytes).map(|body| body.map(Bytes::from))
    })
    .await
    .map_err(|e| crate::beneath::BeneathError::Io {
        path: rel.to_owned(),
        source: std::io::Error::other(e),
    })?
}

/// What went wrong reading a file: the refusal as is ("pnpm-lock.yaml is a symbolic link that
/// leaves the project"), else "reading <path>: <error>".
fn reading(e: &crate::beneath::BeneathError) -> String {
    if e.is_refusal() {
        e.to_string()
    } else {
        format!("reading {e}")
    }
}

/// A failure to read or write in the workspace, saying `message`: the project's when the tree
/// was refused (a link out, a FIFO, a file over its bound), else the farm's.
fn beneath_failure(step: Step, message: String, e: &crate::beneath::BeneathError) -> Failure {
    if e.is_refusal() {
        fail(step, message)
    } else {
        infra(step, message)
    }
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
