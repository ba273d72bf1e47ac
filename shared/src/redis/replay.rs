//! Replay protection for signed requests: a signature that changes something is accepted once.
//! Its first use is recorded in Redis (so every API instance sees it) until its timestamp
//! leaves the accepted window, after which the timestamp check refuses it anyway.

use std::time::Duration;

use redis::AsyncCommands;

use super::{Keys, QueueError, Redis};
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

impl Signatures {
    pub fn new(redis: Redis, keys: Keys) -> Self {
        Self { redis, keys }
    }

    /// Records the use of `mac` (the signature's bytes, so that another spelling of it, in upper
    /// case say, is the same signature) for `ttl`, with the request's `Idempotency-Key`; one
    /// round trip (`SET NX GET`).
    pub async fn record(
        &self,
        mac: &[u8],
        idempotency_key: Option<&str>,
        ttl: Duration,
    ) -> Result<SignatureUse, QueueError> {
        let key = self.keys.signature(&hex::encode(mac));
        let value = match idempotency_key {
            Some(k) => format!("k:{}", sha256_hex(k.as_bytes())),
            None => "-".to_owned(),
        };
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .get(true)
            .with_expiration(redis::SetExpiry::PX(ttl.as_millis().max(1) as u64));
        let before: Option<String> = self.redis.conn().set_options(&key, &value, opts).await?;
        Ok(match before {
            None => SignatureUse::First,
            Some(b) if b == value && idempotency_key.is_some() => SignatureUse::Retry,
            Some(_) => SignatureUse::Replayed,
        })
    }
}
