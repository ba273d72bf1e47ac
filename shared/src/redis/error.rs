//! The error of every Redis module.

/// What went wrong talking to Redis, or in what it holds.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis holds a malformed value at {key}: {reason}")]
    Malformed { key: String, reason: String },
}
