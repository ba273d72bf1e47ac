use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::connection::Redis;
use super::error::RedisError;
use super::keys::Keys;
use super::kv::get_json;
use crate::store::sha256_hex;

/// How long an idempotency key is remembered.
pub const TTL_SECS: u64 = 7 * 24 * 3600;
/// How long a reservation lasts unrenewed: the request holding it renews it every
/// [`RENEW_EVERY`] while it runs, so a reservation whose request died (a crashed API
/// instance, or a release lost to a Redis outage) frees the key within this time.
pub const PENDING_TTL_SECS: u64 = 15;
/// How often a running request renews its reservation.
pub const RENEW_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Extends a reservation only while it is still one (a completed record keeps its own TTL).
static RENEW: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0",
    )
});

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
    redis: Redis,
    keys: Keys,
}

impl Idempotency {
    pub fn new(redis: Redis, keys: Keys) -> Self {
        Self { redis, keys }
    }

    fn key(&self, idempotency_key: &str) -> String {
        self.keys.idempotency(&sha256_hex(idempotency_key.as_bytes()))
    }

    /// Reserves `idempotency_key` for a request whose body hashes to `body_hash`, or says what
    /// already holds it. A reservation expires after [`PENDING_TTL_SECS`] if never completed.
    pub async fn claim(&self, idempotency_key: &str, body_hash: &str) -> Result<Claim, RedisError> {
        let key = self.key(idempotency_key);
        let value = pending(body_hash);
        for _ in 0..2 {
            let mut conn = self.redis.conn();
            let opts = redis::SetOptions::default()
                .conditional_set(redis::ExistenceCheck::NX)
                .with_expiration(redis::SetExpiry::EX(PENDING_TTL_SECS));
            let set: Option<String> = conn.set_options(&key, &value, opts).await?;
            if set.is_some() {
                return Ok(Claim::Fresh);
            }
            let Some(record) = get_json::<IdempotencyRecord>(&self.redis, &key).await? else {
                continue; // expired in between: try again
            };
            return Ok(if record.body_hash != body_hash {
                Claim::Mismatch
            } else if record.status == 0 {
                Claim::InProgress
            } else {
                Claim::Replay(record)
            });
        }
        Ok(Claim::InProgress)
    }

    /// Extends this request's reservation of `idempotency_key` by [`PENDING_TTL_SECS`], if it
    /// is still reserved (not completed, released or expired).
    pub async fn renew(&self, idempotency_key: &str, body_hash: &str) -> Result<bool, RedisError> {
        let renewed: i64 = RENEW
            .key(self.key(idempotency_key))
            .arg(pending(body_hash))
            .arg(PENDING_TTL_SECS)
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(renewed == 1)
    }

    /// Stores the answer of a claimed key, kept for [`TTL_SECS`].
    pub async fn complete(
        &self,
        idempotency_key: &str,
        record: &IdempotencyRecord,
    ) -> Result<(), RedisError> {
        let mut conn = self.redis.conn();
        let value = serde_json::to_string(record).expect("a record always serialises");
        let opts = redis::SetOptions::default().with_expiration(redis::SetExpiry::EX(TTL_SECS));
        let _: Option<String> = conn.set_options(self.key(idempotency_key), value, opts).await?;
        Ok(())
    }

    /// Gives a claimed key up (the request failed): a retry is evaluated afresh.
    pub async fn release(&self, idempotency_key: &str) -> Result<(), RedisError> {
        let mut conn = self.redis.conn();
        let _: i64 = conn.del(self.key(idempotency_key)).await?;
        Ok(())
    }
}

/// A reservation's value: a record without an answer yet (status 0).
fn pending(body_hash: &str) -> String {
    let record = IdempotencyRecord {
        body_hash: body_hash.to_owned(),
        status: 0,
        response: serde_json::Value::Null,
    };
    serde_json::to_string(&record).expect("a record always serialises")
}

/// What holds an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nothing did: the key is now reserved for this request.
    Fresh,
    /// A request with the same body was answered: replay its answer.
    Replay(IdempotencyRecord),
    /// A request with the same body is still being processed.
    InProgress,
    /// The key was used with another body.
    Mismatch,
}
