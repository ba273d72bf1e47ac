//! Replay protection for signed requests: a signature that changes something is accepted once.
//! Its first use is recorded in Redis (so every API instance sees it) until its timestamp
//! leaves the accepted window, after which the timestamp check refuses it anyway.

use std::time::Duration;

use super::connection::Redis;
use super::error::RedisError;
use super::keys::Keys;
use crate::store::sha256_hex;

/// The signatures already used, in Redis.
#[derive(Debug, Clone)]
pub struct Signatures {
    redis: Redis,
    keys: Keys,
}

/// What the record of a signature says about this use of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureUse {
    /// Its first use: now recorded.
    First,
    /// Used before with the same `Idempotency-Key`: the client's retry of one request, which
    /// idempotency answers (with the first answer, so the replay changes nothing).
    Retry,
    /// Used before, without the same `Idempotency-Key`: a replay.
    Replayed,
}

/// The record of one signature's use, to write with `SET NX GET` (alone, or in another
/// pipeline: admission writes it in its first round trip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRecord {
    key: String,
    value: String,
    ttl_ms: u64,
    keyed: bool,
}

impl SignatureRecord {
    /// Adds the `SET NX GET PX` to `pipe`; its answer goes to [`SignatureRecord::judge`].
    pub fn add_to(&self, pipe: &mut redis::Pipeline) {
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .get(true)
            .with_expiration(redis::SetExpiry::PX(self.ttl_ms));
        pipe.set_options(&self.key, &self.value, opts);
    }

    /// What the value found before says about this use.
    pub fn judge(&self, before: Option<String>) -> SignatureUse {
        match before {
            None => SignatureUse::First,
            Some(b) if b == self.value && self.keyed => SignatureUse::Retry,
            Some(_) => SignatureUse::Replayed,
        }
    }
}

impl Signatures {
    pub fn new(redis: Redis, keys: Keys) -> Self {
        Self { redis, keys }
    }

    /// The record of a use of `mac` (the signature's bytes, so that another spelling of it, in
    /// upper case say, is the same signature) for `ttl`, with the request's `Idempotency-Key`.
    pub fn record_of(&self, mac: &[u8], idempotency_key: Option<&str>, ttl: Duration) -> SignatureRecord {
        SignatureRecord {
            key: self.keys.signature(&hex::encode(mac)),
            value: match idempotency_key {
                Some(k) => format!("k:{}", sha256_hex(k.as_bytes())),
                None => "-".to_owned(),
            },
            ttl_ms: ttl.as_millis().max(1) as u64,
            keyed: idempotency_key.is_some(),
        }
    }

    /// Records a use, in one round trip.
    pub async fn record(&self, record: &SignatureRecord) -> Result<SignatureUse, RedisError> {
        let mut pipe = redis::pipe();
        record.add_to(&mut pipe);
        let (before,): (Option<String>,) = pipe.query_async(&mut self.redis.conn()).await?;
        Ok(record.judge(before))
    }
}
