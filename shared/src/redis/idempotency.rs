use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::kv::get_json;
use super::{Keys, Pool, QueueError};
use crate::store::sha256_hex;

/// How long an idempotency key is remembered.
pub const TTL_SECS: u64 = 7 * 24 * 3600;

/// The first answer given for an idempotency key, with a hash of the body it answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyRecord {
    pub body_hash: String,
    pub status: u16,
    pub response: serde_json::Value,
}

/// Idempotency records in Redis, keyed by a hash of the caller's key.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pool: Pool,
    keys: Keys,
}

impl Idempotency {
    pub fn new(pool: Pool, keys: Keys) -> Self {
        Self { pool, keys }
    }

    fn key(&self, idempotency_key: &str) -> String {
        self.keys.idempotency(&sha256_hex(idempotency_key.as_bytes()))
    }

    pub async fn get(&self, idempotency_key: &str) -> Result<Option<IdempotencyRecord>, QueueError> {
        get_json(&self.pool, &self.key(idempotency_key)).await
    }

    /// Stores the first answer; a later one for the same key does not replace it.
    pub async fn put(&self, idempotency_key: &str, record: &IdempotencyRecord) -> Result<(), QueueError> {
        let mut conn = self.pool.get().await?;
        let value = serde_json::to_string(record).expect("a record always serialises");
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::EX(TTL_SECS));
        let _: Option<String> = conn.set_options(self.key(idempotency_key), value, opts).await?;
        Ok(())
    }
}
