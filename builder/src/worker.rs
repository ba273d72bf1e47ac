//! The worker: one slot of the daemon, taking one build at a time ([`Builder::step`]) until
//! shutdown: first a build handed to this builder (it prefers it), else one handed to another
//! that did not take it up in time, else one whose builder was lost (its claim unrenewed for a
//! lease), else a new one from the stream's consumer group; a new build that prefers another
//! builder alive with a free slot is handed to it ([`Builder::route`]); a build whose user is
//! at the running cap, or that arrives while the host's upkeep runs, goes back to the queue.

use std::sync::Arc;
use std::time::Duration;

use kiln_shared::backoff::Backoff;
use kiln_shared::domain::VersionId;
use kiln_shared::redis::{Affinity, HandTo, Job, StreamReader};
use tokio_util::sync::CancellationToken;

use crate::context::Builder;
use crate::job;

/// The longest a worker waits after an error (the wait doubles from 250 ms) before it reads again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a worker waits after putting back a build whose user is at the running cap, so
/// that a queue holding only such builds is not read in a tight loop.
const DEFER_PAUSE: Duration = Duration::from_millis(250);

/// What one step of a worker did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// A build was taken and its outcome recorded.
    Built(VersionId),
    /// Nothing was waiting.
    Empty,
    /// A build was read, but its user runs as many builds as `KILN_MAX_RUNNING_PER_USER`
    /// allows: it went back to the end of the queue.
    Deferred(VersionId),
    /// A build was read that prefers another builder, alive with a free slot: it was handed
    /// to that builder (or another daemon had taken it over meanwhile).
    HandedOn(VersionId),
}

impl Builder {
    /// The next build for this daemon: one handed to it, else one handed to another builder
    /// and overdue, else one whose builder was lost, else a new one (waiting up to the reader's
    /// block, or until a nudge says a build was handed to this builder).
    pub async fn next_job(&self, reader: &mut StreamReader) -> anyhow::Result<Option<Job>> {
        let nudges = reader.take_nudges();
        if let Some(job) = self
            .queue
            .take(self.consumer(), self.settings.fleet.lease, &nudges)
            .await?
        {
            return Ok(Some(job));
        }
        Ok(reader.read(self.consumer()).await?)
    }

    /// Affinity (`KILN_AFFINITY_MS`): a new build that prefers another builder is handed to it
    /// when it is alive, has a free slot and the build is younger than the bound (true: this
    /// worker leaves it). Otherwise the job notes why it runs here, for its log and metrics.
    pub async fn route(&self, job: &mut Job) -> anyhow::Result<bool> {
        let (Some(bound), Some(prefer)) = (self.settings.fleet.affinity, job.prefer.clone()) else {
            return Ok(false);
        };
        // Handed here, overdue, or taken over from a lost builder: it runs here.
        if job.affinity != Affinity::None || job.reclaimed {
            return Ok(false);
        }
        if prefer == self.consumer() {
            job.affinity = Affinity::Preferred;
            return Ok(false);
        }
        let lease = kiln_shared::redis::fleet::LEASE;
        match self
            .queue
            .hand_to(self.consumer(), job, &prefer, bound, lease)
            .await?
        {
            HandTo::Handed => {
                self.metrics.affinity("handed_off");
                tracing::debug!(build_id = %job.build_id, prefer, "handed the build to the builder it prefers");
                Ok(true)
            }
            HandTo::Keep(why) => {
                job.affinity = Affinity::Elsewhere { prefer, why };
                Ok(false)
            }
            HandTo::Lost => {
                tracing::warn!(build_id = %job.build_id, "the build's entry was reclaimed before it could be handed on");
                Ok(true)
            }
        }
    }

    /// `KILN_MAX_RUNNING_PER_USER`: takes one of the job's user's running slots (fleet-wide,
    /// in Redis). When they are all taken, a new build goes back to the end of the queue (true:
    /// deferred), so other users' builds behind it run meanwhile; a build taken over from a
    /// lost builder runs anyway (it was counted when it started).
    pub async fn defer_over_user_cap(&self, job: &Job) -> anyhow::Result<bool> {
        let Some(cap) = self.settings.fleet.max_running_per_user else {
            return Ok(false);
        };
        let lease = self.settings.fleet.lease;
        if self
            .queue
            .take_user_slot(&job.user_id, job.build_id, self.consumer(), cap, lease)
            .await?
        {
            return Ok(false);
        }
        if job.reclaimed {
            tracing::info!(build_id = %job.build_id, user_id = %job.user_id,
                "taking over a build although its user is at the running cap");
            return Ok(false);
        }
        if !self.queue.hand_back(self.consumer(), job, false).await? {
            tracing::warn!(build_id = %job.build_id, "the build's entry was reclaimed before it could be put back");
        }
        tracing::debug!(build_id = %job.build_id, user_id = %job.user_id, cap,
            "the user's running builds are at the cap; the build goes back to the queue");
        Ok(true)
    }

    /// Runs a claimed job to its recorded outcome (or hands it on), then frees its user's
    /// running slot.
    pub async fn execute(&self, job: &Job) -> anyhow::Result<VersionId> {
        // Held for the whole build: the host's upkeep never prunes the store under it.
        let store_use = crate::upkeep::StoreUse::acquire(&self.settings.builder.work_dir).await?;
        let outcome = job::execute(self, job).await;
        drop(store_use);
        if self.settings.fleet.max_running_per_user.is_some() {
            if let Err(e) = self
                .queue
                .free_user_slot(&job.user_id, job.build_id, self.consumer())
                .await
            {
                tracing::warn!(build_id = %job.build_id, error = %e,
                    "cannot free the user's running slot; it frees itself after the lease");
            }
        }
        outcome
    }

    /// Takes and runs at most one build.
    pub async fn step(&self, reader: &mut StreamReader) -> anyhow::Result<StepOutcome> {
        let Some(mut job) = self.next_job(reader).await? else {
            return Ok(StepOutcome::Empty);
        };
        // The host's upkeep began while this worker waited on the stream: the build goes
        // back to the queue (another host may take it) instead of waiting here.
        if crate::upkeep::paused(&self.settings.builder.work_dir) {
            if !self.queue.hand_back(self.consumer(), &job, job.reclaimed).await? {
                tracing::warn!(build_id = %job.build_id, "the build's entry was reclaimed before it could be put back");
            }
            tracing::info!(build_id = %job.build_id, "the host's upkeep runs: the build goes back to the queue");
            return Ok(StepOutcome::Deferred(job.build_id));
        }
        if self.route(&mut job).await? {
            return Ok(StepOutcome::HandedOn(job.build_id));
        }
        if self.defer_over_user_cap(&job).await? {
            return Ok(StepOutcome::Deferred(job.build_id));
        }
        self.execute(&job).await.map(StepOutcome::Built)
    }
}

pub(crate) async fn worker(builder: Arc<Builder>, shutdown: CancellationToken, slot: usize) {
    let mut backoff = Backoff::new(Duration::from_millis(250), MAX_BACKOFF);
    let mut reader = builder.reader();
    // Shutdown is checked between reads: a read is never abandoned half-way (Redis could have
    // handed it an entry), so stopping takes at most one block.
    let mut paused = false;
    while !shutdown.is_cancelled() {
        // The host's upkeep (`kiln-builder maintain`) is waiting for the store: claim nothing.
        if crate::upkeep::paused(&builder.settings.builder.work_dir) {
            if !paused {
                tracing::info!(
                    slot,
                    "the host's upkeep runs: no builds are claimed until it ends"
                );
                paused = true;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        paused = false;
        match builder.step(&mut reader).await {
            Ok(StepOutcome::Deferred(_)) => {
                backoff.reset();
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(DEFER_PAUSE) => {}
                }
            }
            Ok(_) => backoff.reset(),
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::error!(
                    slot,
                    error = format!("{e:#}"),
                    retry_in_ms = delay.as_millis() as u64,
                    "worker error"
                );
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    tracing::info!(slot, "worker stopped");
}
