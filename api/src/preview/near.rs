//! Each API instance's own copy of public projects' gates, so serving a public preview asks
//! Redis nothing (a cache, not state: every instance keeps its own, for [`TTL`] at most).
//!
//! Only public gates are kept: a private project's gate (its share key, its revocation) is
//! read from the KV on every request. A change of a project's row is published on
//! `<prefix>:project-changes` ([`kiln_shared::redis::Queue::forget_project`]); every instance
//! subscribes and drops its copy, and the instance that made the change drops its own before it
//! answers. A copy being filled while a change arrives is not kept (the [`NearGates::epoch`]
//! moved), and a (re)subscription drops every copy: a change missed while unsubscribed
//! cannot leave one behind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kiln_shared::backoff::Backoff;
use kiln_shared::domain::{PreviewAccess, ProjectId, UserId};
use kiln_shared::redis::{Keys, ProjectGate, Redis};

/// How long a copy is kept (a bound should a change's message be lost while subscribed).
pub const TTL: Duration = Duration::from_secs(5);
/// Projects kept.
const CAPACITY: u64 = 100_000;

/// This instance's copies of public projects' gates.
#[derive(Debug, Clone)]
pub struct NearGates {
    copies: moka::sync::Cache<(String, String), ProjectGate>,
    /// Moves on every change seen: a fill that started before it is not kept.
    epoch: Arc<AtomicU64>,
}

impl Default for NearGates {
    fn default() -> Self {
        Self {
            copies: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(TTL)
                .build(),
            epoch: Arc::default(),
        }
    }
}

fn key(user: &UserId, project: &ProjectId) -> (String, String) {
    (user.as_str().to_owned(), project.as_str().to_owned())
}

impl NearGates {
    pub fn get(&self, user: &UserId, project: &ProjectId) -> Option<ProjectGate> {
        self.copies.get(&key(user, project))
    }

    /// Where the changes stand, before a fill reads the gate.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Keeps a public gate read since `epoch` (unless a change came in between).
    pub fn fill(&self, user: &UserId, project: &ProjectId, gate: &ProjectGate, epoch: u64) {
        if gate.access == PreviewAccess::Public && self.epoch() == epoch {
            self.copies.insert(key(user, project), gate.clone());
        }
    }

    /// Drops the copy of a project that changed.
    pub fn forget(&self, user: &UserId, project: &ProjectId) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.copies.invalidate(&key(user, project));
    }

    fn forget_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.copies.invalidate_all();
    }

    /// Follows the changes published by every instance, on the current runtime, resubscribing
    /// by itself.
    pub fn follow(&self, redis: Redis, keys: Keys) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
            loop {
                match this.listen(&redis, &keys).await {
                    Ok(()) => {
                        backoff.reset();
                        tracing::warn!("the project changes subscription ended; resubscribing")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the project changes subscription failed; resubscribing")
                    }
                }
                // Unsubscribed: a change may be missed meanwhile.
                this.forget_all();
                tokio::time::sleep(backoff.next_delay()).await;
            }
        });
    }

    async fn listen(&self, redis: &Redis, keys: &Keys) -> Result<(), kiln_shared::redis::RedisError> {
        let mut pubsub = redis.pubsub().await?;
        pubsub.subscribe(keys.project_changes()).await?;
        // Changes made before the subscription took may have been missed.
        self.forget_all();
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            let parsed = payload
                .split_once('/')
                .and_then(|(u, p)| Some((UserId::parse(u).ok()?, ProjectId::parse(p).ok()?)));
            match parsed {
                Some((user, project)) => self.forget(&user, &project),
                None => self.forget_all(),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(access: PreviewAccess) -> ProjectGate {
        ProjectGate {
            access,
            indexable: false,
            share_key: None,
        }
    }

    #[test]
    fn only_public_gates_are_kept_and_a_change_during_a_fill_wins() {
        let near = NearGates::default();
        let (u, p) = (UserId::parse("u").unwrap(), ProjectId::parse("p").unwrap());
        near.fill(&u, &p, &gate(PreviewAccess::Private), near.epoch());
        assert_eq!(near.get(&u, &p), None);
        let before = near.epoch();
        near.forget(&u, &p);
        near.fill(&u, &p, &gate(PreviewAccess::Public), before);
        assert_eq!(near.get(&u, &p), None, "filled from a read older than the change");
        near.fill(&u, &p, &gate(PreviewAccess::Public), near.epoch());
        assert_eq!(near.get(&u, &p), Some(gate(PreviewAccess::Public)));
        near.forget(&u, &p);
        assert_eq!(near.get(&u, &p), None);
    }
}
