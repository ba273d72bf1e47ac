//! Kiln's Redis: the build stream and its consumer group, the per-project in-flight claim, the
//! latest pointer per project (the KV), preview labels and idempotency records. Every key starts
//! with the configured prefix, so tests (and several farms) can share one Redis.

mod idempotency;
mod kv;
mod queue;

pub use deadpool_redis::Pool;
pub use idempotency::{Claim, Idempotency, IdempotencyRecord};
pub use kv::{LatestPointer, ProjectRef};
pub use queue::{Admission, Job, Queue, CONSUMER_GROUP};

use secrecy::ExposeSecret;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis pool: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    #[error("redis holds a malformed value at {key}: {reason}")]
    Malformed { key: String, reason: String },
}

/// Opens a connection pool (connections are made lazily). Every command must answer within
/// `response_timeout`; a blocking read (`XREADGROUP BLOCK n`) needs a timeout longer than `n`,
/// or the client gives up on a read that Redis may still answer with an entry.
pub fn connect(
    url: &secrecy::SecretString,
    max_size: usize,
    response_timeout: std::time::Duration,
) -> Result<Pool, QueueError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(std::time::Duration::from_secs(5)))
        .set_response_timeout(Some(response_timeout));
    let malformed = |reason: String| QueueError::Malformed {
        key: "KILN_REDIS_URL".into(),
        reason,
    };
    let manager = deadpool_redis::Manager::new_with_config(url.expose_secret(), config)
        .map_err(|e| malformed(e.to_string()))?;
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool_redis::Runtime::Tokio1)
        .build()
        .map_err(|e| malformed(e.to_string()))
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

    pub fn idempotency(&self, key_hash: &str) -> String {
        format!("{}:idem:{key_hash}", self.prefix)
    }
}

/// `PING`, for `/readyz`.
pub async fn ping(pool: &Pool) -> Result<(), QueueError> {
    let mut conn = pool.get().await?;
    let _: String = redis::cmd("PING").query_async(&mut *conn).await?;
    Ok(())
}
