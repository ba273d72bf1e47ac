//! One build, from claim to record: [`execute`] claims the build (starting it, or taking it
//! over from a lost builder) and runs one attempt: the [`stations`] in the build's cell, then
//! the [`outcome`]'s books (record, retry, hand back, release, ack). [`failure`] says why an
//! attempt failed and whose fault it was. Before any station, the build's [`env`]ironment is
//! read and its [`build_key`] computed: a build identical to a deployed version of its project
//! is not run, that version's output is [`reuse`]d.

mod build_key;
mod env;
mod failure;
mod files;
mod outcome;
mod reuse;
mod stations;

use std::time::Instant as StdInstant;

use bytes::Bytes;
use kiln_shared::db::patiently;
use kiln_shared::db::versions::{self, Metrics, TakeOver, Version};
use kiln_shared::domain::{EventType, VersionId};
use kiln_shared::metrics::Phase;
use kiln_shared::redis::Job;
use serde_json::json;
use tracing::Instrument;

use self::failure::{Cause, Failure};
use self::outcome::Success;
use self::outcome::{
    done_with, emit, give_up, hand_back, observe, record_failure, record_success, release, resume_log,
    retry_later, settle,
};
use crate::context::Builder;
use crate::lease::{Claim, Keeper, Stop, Stopper};
use crate::log::{BuildLog, LogShipper};
use crate::workspace::Workspace;

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
    let log = BuildLog::with(b.settings.builder.max_log_bytes, b.redactor.clone(), Some(live));
    if version.attempts > 1 {
        resume_log(b, version, &log).await;
    }
    if let Some(line) = job.affinity.log_line(b.consumer()) {
        b.metrics.affinity(job.affinity.label());
        log.line(&line);
    }
    let mut metrics = Metrics::default();
    let Attempted {
        outcome,
        build_key,
        reused_from,
    } = reuse_or_build(b, version, &log, &mut metrics, stopper).await;
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
    if outcome.is_ok() && stopper.reason().is_none() {
        remember_builder(b, version).await;
    }
    let recorded = match (stopper.reason(), outcome) {
        // The API recorded the cancel (and its event) and released the slot.
        (Some(_), _) => false,
        (None, Ok(success)) => {
            record_success(b, version, success, &metrics, build_key.as_deref(), reused_from).await?
        }
        (None, Err(failure)) => record_failure(b, version, failure, &metrics).await?,
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

/// Affinity: records this builder as the one that last built the project (before the outcome
/// is recorded, so a rebuild admitted once the build is deployed already prefers it).
async fn remember_builder(b: &Builder, version: &Version) {
    if b.settings.fleet.affinity.is_none() {
        return;
    }
    let remembered = b
        .queue
        .remember_builder(&version.user_id, &version.project_id, b.consumer())
        .await;
    if let Err(e) = remembered {
        tracing::warn!(error = %e, "cannot record the project's builder; its next build prefers none");
    }
}

/// What an attempt did: its outcome, its key and the version whose output it reused.
struct Attempted {
    outcome: Result<Success, Failure>,
    build_key: Option<String>,
    reused_from: Option<VersionId>,
}

/// Reads the build's environment, then reuses an identical deployed version's output, or runs
/// the stations (in a workspace of their own) and keys the tree they built.
async fn reuse_or_build(
    b: &Builder,
    version: &Version,
    log: &BuildLog,
    metrics: &mut Metrics,
    stopper: &Stopper,
) -> Attempted {
    let env = match env::read(b, version, log).await {
        Ok(env) => env,
        Err(failure) => {
            return Attempted {
                outcome: Err(failure),
                build_key: None,
                reused_from: None,
            }
        }
    };
    // Read once for the key and the fetch station; a tree the store cannot give fails at the
    // fetch station, as it did before.
    let given = version.sources(&b.artifacts).await.ok();
    let key = given
        .as_ref()
        .and_then(|sources| reuse::key_of(b, version, &env, sources));
    if let Some(key) = &key {
        if let Some((success, from)) = reuse::reuse(b, version, key, log, metrics).await {
            return Attempted {
                outcome: Ok(success),
                build_key: Some(key.clone()),
                reused_from: Some(from),
            };
        }
    }
    let ws = Workspace::new(&b.settings.builder.work_dir, version.id);
    // Boxed: the build future is large, and worker stacks are not.
    let outcome = Box::pin(stations::build(
        b,
        version,
        &ws,
        log,
        metrics,
        stopper,
        stations::Given {
            project_env: &env.values,
            sources: given.as_ref(),
        },
    ))
    .await;
    // The outcome does not wait for the workspace to go (a node_modules tree takes a few
    // hundred milliseconds to delete).
    tokio::spawn(ws.remove());
    // The tree as built: with the lockfile the install wrote, when it wrote one.
    let build_key = match &outcome {
        Ok(Success {
            sources: Some(built), ..
        }) => reuse::key_of(b, version, &env, built),
        _ => key,
    };
    Attempted {
        outcome,
        build_key,
        reused_from: None,
    }
}
