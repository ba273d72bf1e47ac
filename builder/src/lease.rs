//! A running attempt's claim on its build, and everything that can stop the attempt early.
//!
//! While an attempt runs, its [`Keeper`] renews the claim on the build's stream entry every
//! third of the lease (`KILN_LEASE_SECS`). A daemon that dies stops renewing, and another
//! daemon reclaims the entry once it has sat a whole lease unrenewed. The keeper also stops
//! its own attempt when:
//! - the claim is gone (another daemon reclaimed the entry: this one was cut off from Redis
//!   for longer than the lease), or Redis cannot be reached for a whole lease;
//! - the build's row says it was cancelled, or another attempt now owns it (the check that
//!   backs up the cancel announcements on Pub/Sub).
//!
//! A stopped attempt's processes get SIGTERM, then SIGKILL after `KILN_CANCEL_GRACE_SECS`
//! ([`crate::process`]), and nothing it would still write is recorded: every write of an
//! attempt is fenced by its attempt number in Postgres and by the entry's owner in Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_shared::db::{versions, PgPool};
use kiln_shared::domain::{BuildStatus, EventType, UserId, VersionId};
use kiln_shared::redis::Queue;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Why an attempt stopped before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A client cancelled the build.
    Cancelled,
    /// The attempt's claim is gone: another daemon reclaimed the build.
    LeaseLost,
    /// The daemon is draining and its deadline passed: the build goes back to the queue.
    Drained,
}

/// Stops one attempt; the first reason given wins.
#[derive(Debug, Clone, Default)]
pub struct Stopper {
    token: CancellationToken,
    reason: Arc<Mutex<Option<Stop>>>,
}

impl Stopper {
    pub fn stop(&self, why: Stop) {
        let mut reason = self.reason.lock().expect("stop lock poisoned");
        if reason.is_none() {
            *reason = Some(why);
            tracing::info!(reason = ?why, "stopping the build");
        }
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<Stop> {
        *self.reason.lock().expect("stop lock poisoned")
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

/// The attempts this daemon runs, by build, so that a cancel announcement or the drain
/// deadline can stop them.
#[derive(Debug, Clone, Default)]
pub struct Running {
    attempts: Arc<Mutex<HashMap<VersionId, Attempt>>>,
    registrations: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug)]
struct Attempt {
    /// Which registration this is: a build taken over by another worker of the same daemon
    /// (its claim lapsed while the first attempt was still stopping) is registered again, and
    /// the first attempt's guard must not forget the second.
    registration: u64,
    stopper: Stopper,
    /// The newest event it emitted (the fleet view shows where each build is).
    last_event: Option<EventType>,
}

impl Running {
    /// Registers an attempt; it is forgotten when the returned guard drops.
    pub fn register(&self, build: VersionId) -> (Stopper, Registered) {
        let stopper = Stopper::default();
        let registration = self
            .registrations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let attempt = Attempt {
            registration,
            stopper: stopper.clone(),
            last_event: None,
        };
        self.lock().insert(build, attempt);
        let registered = Registered {
            running: self.clone(),
            build,
            registration,
        };
        (stopper, registered)
    }

    pub fn stop(&self, build: VersionId, why: Stop) -> bool {
        match self.lock().get(&build) {
            Some(a) => {
                a.stopper.stop(why);
                true
            }
            None => false,
        }
    }

    pub fn stop_all(&self, why: Stop) -> usize {
        let all = self.lock();
        for a in all.values() {
            a.stopper.stop(why);
        }
        all.len()
    }

    pub fn builds(&self) -> Vec<VersionId> {
        self.lock().keys().copied().collect()
    }

    /// Notes the newest event of a running build.
    pub fn saw(&self, build: VersionId, event: EventType) {
        if let Some(a) = self.lock().get_mut(&build) {
            a.last_event = Some(event);
        }
    }

    /// Each running build and its newest event, by id.
    pub fn snapshot(&self) -> Vec<(VersionId, Option<EventType>)> {
        let mut all: Vec<_> = self.lock().iter().map(|(id, a)| (*id, a.last_event)).collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<VersionId, Attempt>> {
        self.attempts.lock().expect("running lock poisoned")
    }
}

/// Removes its attempt from [`Running`] when dropped.
#[derive(Debug)]
pub struct Registered {
    running: Running,
    build: VersionId,
    registration: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut attempts = self.running.lock();
        if attempts
            .get(&self.build)
            .is_some_and(|a| a.registration == self.registration)
        {
            attempts.remove(&self.build);
        }
    }
}

/// What a keeper watches.
#[derive(Debug, Clone)]
pub struct Claim {
    pub build: VersionId,
    pub attempt: i32,
    pub consumer: String,
    pub entry_id: String,
    /// The build's user and `KILN_MAX_RUNNING_PER_USER`, when there is a cap: the user's
    /// running slot is renewed with the claim.
    pub user_slot: Option<(UserId, u32)>,
}

/// Renews an attempt's claim in the background; stops when dropped.
#[derive(Debug)]
pub struct Keeper {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Keeper {
    pub fn start(queue: Queue, db: PgPool, claim: Claim, lease: Duration, stopper: Stopper) -> Self {
        let every = lease / 3;
        let task = tokio::spawn(async move {
            let mut last_renewed = Instant::now();
            let mut tick = tokio::time::interval_at(Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stopper.token().cancelled() => return,
                    _ = tick.tick() => {}
                }
                match queue.renew(&claim.consumer, &claim.entry_id).await {
                    Ok(true) => {
                        last_renewed = Instant::now();
                        if let Some((user, cap)) = &claim.user_slot {
                            if let Err(e) = queue
                                .take_user_slot(user, claim.build, &claim.consumer, *cap, lease)
                                .await
                            {
                                tracing::warn!(build_id = %claim.build, error = %e, "cannot renew the user's running slot");
                            }
                        }
                    }
                    Ok(false) => {
                        tracing::warn!(build_id = %claim.build, "the build's claim was taken over");
                        stopper.stop(Stop::LeaseLost);
                        return;
                    }
                    Err(e) if last_renewed.elapsed() >= lease => {
                        tracing::warn!(build_id = %claim.build, error = %e,
                            "cannot renew the build's claim for a whole lease; giving it up");
                        stopper.stop(Stop::LeaseLost);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(build_id = %claim.build, error = %e, "cannot renew the build's claim")
                    }
                }
                match versions::attempt_of(&db, claim.build).await {
                    Ok(Some((BuildStatus::Cancelled | BuildStatus::Superseded, _))) => {
                        stopper.stop(Stop::Cancelled);
                        return;
                    }
                    Ok(Some((_, attempt))) if attempt != claim.attempt => {
                        stopper.stop(Stop::LeaseLost);
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(build_id = %claim.build, error = %e, "cannot read the build's status")
                    }
                }
            }
        });
        Self { task }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_forgets_only_its_own_registration() {
        let running = Running::default();
        let build = VersionId::new();
        let (_, first) = running.register(build);
        let (second_stopper, second) = running.register(build);
        drop(first);
        assert_eq!(running.builds(), vec![build], "the second attempt is still known");
        assert!(running.stop(build, Stop::Cancelled));
        assert_eq!(second_stopper.reason(), Some(Stop::Cancelled));
        drop(second);
        assert!(running.builds().is_empty());
    }
}
