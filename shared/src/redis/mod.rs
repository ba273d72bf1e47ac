//! Kiln's Redis: the build stream and its consumer group, the per-project in-flight claim, the
//! latest pointer per project (the KV), preview labels, idempotency records and used request
//! signatures. Every key starts with the configured prefix, so tests (and several farms) can
//! share one Redis.
//!
//! - `connection`: [`Redis`], the shared connection and dedicated ones for blocking reads; `PING`.
//! - `keys`: [`Keys`], every key's name under the prefix; `error`: [`RedisError`].
//! - [`Queue`]: the build stream and everything keyed by a project or a build (slots, quotas,
//!   latest pointers, locks, cancel and event announcements), one file per side that uses it.
//! - [`fleet`], `logs`, `idempotency`, `replay`: the live builders, live build logs,
//!   idempotency records and used request signatures, each on its own keys.
//! - `kv`: the JSON values the KV holds (latest pointers, label owners).

mod connection;
mod error;
pub mod fleet;
mod idempotency;
mod keys;
mod kv;
mod logs;
mod queue;
mod replay;

pub use connection::{connect, ping, Redis};
pub use error::RedisError;
pub use fleet::{Fleet, FleetCapacity, LiveBuilder};
pub use idempotency::{Claim, Idempotency, IdempotencyRecord, RENEW_EVERY as IDEMPOTENCY_RENEW_EVERY};
pub use keys::Keys;
pub use kv::{LatestPointer, ProjectRef};
pub use logs::{LiveLogs, LogEntry, LogFollower};
pub use queue::{
    Admission, Affinity, Elsewhere, GateRead, HandTo, Job, MaintenanceLock, Preflight, ProjectGate, Queue,
    Quota, QuotaHit, QuotaLimits, StreamReader, AFFINITY_TTL, CONSUMER_GROUP, GATE_TTL_SECS,
};
pub use replay::{SignatureRecord, SignatureUse, Signatures};
