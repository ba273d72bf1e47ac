//! Kiln's Redis: the build stream and its consumer group, the per-project in-flight claim, the
//! latest pointer per project (the KV), preview labels, idempotency records and used request
//! signatures. Every key starts with the configured prefix, so tests (and several farms) can
//! share one Redis.

pub mod fleet;
mod idempotency;
mod kv;
mod logs;
mod maintenance;
mod queue;
mod replay;

pub use fleet::{Fleet, FleetCapacity, LiveBuilder};
pub use idempotency::{Claim, Idempotency, IdempotencyRecord, RENEW_EVERY as IDEMPOTENCY_RENEW_EVERY};
pub use kv::{LatestPointer, ProjectRef};
pub use logs::{LiveLogs, LogEntry, LogFollower};
pub use maintenance::MaintenanceLock;
pub use queue::{
    Admission, Job, Preflight, Queue, Quota, QuotaHit, QuotaLimits, StreamReader, CONSUMER_GROUP,
};
use redis::aio::{ConnectionManager, MultiplexedConnection};
pub use replay::{SignatureRecord, SignatureUse, Signatures};

use secrecy::ExposeSecret;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis holds a malformed value at {key}: {reason}")]
    Malformed { key: String, reason: String },
}

/// Kiln's connection to Redis: one multiplexed connection shared by every task (it reconnects
/// by itself), plus dedicated connections for blocking reads, which would stall it.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    shared: ConnectionManager,
    response_timeout: std::time::Duration,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").finish_non_exhaustive()
    }
}

impl Redis {
    /// Another shared connection to the same server, opened lazily by the first task that uses
    /// it (so its I/O is driven by that task's runtime: the API gives each worker thread its own).
    pub fn another(&self) -> Result<Redis, QueueError> {
        Ok(Redis {
            client: self.client.clone(),
            shared: lazy_manager(&self.client, self.response_timeout)?,
            response_timeout: self.response_timeout,
        })
    }

    /// A connection for `SUBSCRIBE`/`PSUBSCRIBE` (it can do nothing else).
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, QueueError> {
        Ok(self.client.get_async_pubsub().await?)
    }

    /// The shared connection (cheap to clone).
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.shared.clone()
    }

    /// A connection of its own, for a command that blocks up to `block`.
    pub(crate) async fn dedicated(
        &self,
        block: std::time::Duration,
    ) -> Result<MultiplexedConnection, QueueError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(block + std::time::Duration::from_secs(5)));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }
}

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the connection lazily (a binary starts while Redis is down, and `/readyz` says so).
/// Every command on the shared connection must answer within `response_timeout`.
pub fn connect(
    url: &secrecy::SecretString,
    response_timeout: std::time::Duration,
) -> Result<Redis, QueueError> {
    let client = redis::Client::open(url.expose_secret()).map_err(|e| QueueError::Malformed {
        key: "KILN_REDIS_URL".into(),
        reason: e.to_string(),
    })?;
    let shared = lazy_manager(&client, response_timeout)?;
    Ok(Redis {
        client,
        shared,
        response_timeout,
    })
}

fn lazy_manager(
    client: &redis::Client,
    response_timeout: std::time::Duration,
) -> Result<ConnectionManager, QueueError> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(1);
    Ok(ConnectionManager::new_lazy_with_config(client.clone(), config)?)
}

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn stream(&self) -> String {
        format!("{}:builds", self.prefix)
    }

    pub fn inflight(&self, user: &str, project: &str) -> String {
        format!("{}:inflight:{user}:{project}", self.prefix)
    }

    pub fn latest(&self, user: &str, project: &str) -> String {
        format!("{}:latest:{user}:{project}", self.prefix)
    }

    pub fn label(&self, label: &str) -> String {
        format!("{}:label:{label}", self.prefix)
    }

    /// The Pub/Sub channel of one build's events.
    pub fn events(&self, build: &str) -> String {
        format!("{}:events:{build}", self.prefix)
    }

    /// The pattern that matches every build's events channel.
    pub fn events_pattern(&self) -> String {
        format!("{}:events:*", self.prefix)
    }

    /// The live log stream of one build.
    pub fn logs(&self, build: &str) -> String {
        format!("{}:logs:{build}", self.prefix)
    }

    /// The live builders, scored by their last heartbeat (Redis time, ms).
    pub fn builders(&self) -> String {
        format!("{}:builders", self.prefix)
    }

    /// What one builder reported in its last heartbeat.
    pub fn builder(&self, id: &str) -> String {
        format!("{}:builder:{id}", self.prefix)
    }

    /// The lock of the nightly maintenance run (`kiln-ops maintain`), one at a time fleet-wide.
    pub fn maintenance_lock(&self) -> String {
        format!("{}:maintenance-lock", self.prefix)
    }

    /// A counter taken with the maintenance lock: each run's fencing number.
    pub fn maintenance_fence(&self) -> String {
        format!("{}:maintenance-fence", self.prefix)
    }

    /// The lock one daemon of the fleet holds while it reconciles the queue.
    pub fn reconcile_lock(&self) -> String {
        format!("{}:reconcile-lock", self.prefix)
    }

    /// The Pub/Sub channel on which cancelled builds are announced to the builders.
    /// Stream entries no builder could read (missing or invalid fields), kept for an operator
    /// to look at (`XRANGE`), the newest 1,000.
    pub fn dead_letters(&self) -> String {
        format!("{}:builds:dead", self.prefix)
    }

    pub fn cancels(&self) -> String {
        format!("{}:cancels", self.prefix)
    }

    /// A user's running builds, fleet-wide (for `KILN_MAX_RUNNING_PER_USER`).
    pub fn running_of(&self, user: &str) -> String {
        format!("{}:running:{user}", self.prefix)
    }

    /// The builds of a user's new projects in the quota window (sorted set: build id → Redis
    /// time in ms).
    pub fn quota_new_projects(&self, user: &str) -> String {
        format!("{}:quota:new-projects:{user}", self.prefix)
    }

    /// The rebuilds of a project in the quota window (sorted set: build id → Redis time in ms).
    pub fn quota_rebuilds(&self, user: &str, project: &str) -> String {
        format!("{}:quota:rebuilds:{user}:{project}", self.prefix)
    }

    pub fn idempotency(&self, key_hash: &str) -> String {
        format!("{}:idem:{key_hash}", self.prefix)
    }

    /// A used request signature (hex of its bytes), kept while its timestamp is acceptable.
    pub fn signature(&self, mac_hex: &str) -> String {
        format!("{}:sig:{mac_hex}", self.prefix)
    }
}

/// `PING`, for `/readyz`.
pub async fn ping(redis: &Redis) -> Result<(), QueueError> {
    let _: String = redis::cmd("PING").query_async(&mut redis.conn()).await?;
    Ok(())
}
