//! The build stream, and everything Redis keeps per project or per build around it. The
//! `Queue` is one handle; its methods are cut by the side that calls them:
//!
//! - [`produce`]: admission (the API) queues a build, counting it against its quotas;
//! - [`consume`]: the builder daemons read, renew, acknowledge, hand back and reclaim builds;
//! - [`slots`]: a project's in-flight slot, and a user's running slots across the fleet;
//! - [`repair`]: what the consistency checks read and re-add when Postgres and Redis disagree;
//! - [`locks`]: fleet-wide locks (one daemon reconciles, one maintenance run at a time);
//! - [`notify`]: Pub/Sub announcements (build events to the APIs, cancels to the builders);
//! - [`latest`]: the KV, each project's latest pointer and which project a label names.
//! - [`remove`]: what Redis keeps of a deleted project, removed.
//! - [`affinity`]: a rebuild handed to the builder that last built its project.
//!
//! # The streams design
//!
//! One stream (`{prefix}:builds`) holds one entry per build waiting or being built, with the
//! fields `build_id`, `user_id` and `project_id` (and `take_over` on an entry put back for a
//! build whose claim was lost, `prefer` on a build of a project a builder built before). Every builder daemon reads it as a consumer of one consumer
//! group, [`CONSUMER_GROUP`], under its builder id (`KILN_BUILDER_ID`). `XREADGROUP ... >` hands each new entry
//! to exactly one consumer and records it in the group's pending entries list (PEL) under that
//! consumer: the PEL entry *is* the running build's claim, and nothing else records who runs
//! what.
//!
//! - **Claims and leases.** A daemon renews its claim while the build runs (every third of
//!   `KILN_LEASE_SECS`), which resets the entry's idle time. A daemon that dies or is cut off
//!   stops renewing; once an entry has been idle for a lease, another daemon takes it over with
//!   `XAUTOCLAIM` ([`Queue::reclaim`]) and runs the build again as a new attempt, counted as
//!   lost. Postgres fences every write of an attempt by its number, so the old daemon's late
//!   writes change nothing.
//! - **Acks.** A finished build's entry is acknowledged *and deleted* (`XACK` + `XDEL`): there is
//!   one group, so a processed entry is of no further use, and the stream's length is exactly
//!   the builds waiting plus running ([`Queue::depth`]). A draining daemon hands its builds back
//!   as new entries any daemon may read ([`Queue::hand_back`]).
//! - **Affinity.** An entry may prefer a builder; a daemon that reads it may move it to that
//!   builder's pending list (`XCLAIM`), never out of the stream, and after a short deadline
//!   any daemon takes it from there ([`affinity`]).
//! - **Dead letters.** An entry that describes no build (a field missing or invalid) is moved
//!   to `{prefix}:builds:dead` and acknowledged, so it is neither retried nor reclaimed forever.
//! - **The project's slot.** Beside the stream, `{prefix}:inflight:{user}:{project}` holds the
//!   build that owns the project (one build of a project at a time). Admission takes the slot
//!   and adds the entry together; the build's end releases the slot only if it still holds it.
//! - **Why Lua scripts.** Each of these steps is a check and an act on several keys: "does this
//!   consumer still own the entry? then acknowledge it", "is the slot free and the quota not
//!   used up? then take the slot, count the unit, record the label and add the entry". Done as
//!   separate commands, another client could act in between (a lost daemon acknowledging the
//!   entry its successor just reclaimed; a queued build without a claim, or a claim without a
//!   build). A script runs atomically on the server, so each step happens whole or not at all.
//!   The scripts are the `*.lua` files beside this module, each kept in a static and run by
//!   its hash (`EVALSHA`; the script is loaded when the server does not know it yet);
//!   `owned.lua` is the shared head of the four that act only for the entry's owner.
//! - **Pub/Sub is a hint.** Events and cancels are also published, at most once: the record is
//!   Postgres, which the APIs and the builders read again when a message was missed.
//!
//! The consistency checks ([`crate::consistency`]) repair what a crash between Postgres and
//! Redis leaves behind: queued builds whose entry is gone, running builds whose claim is gone,
//! slots held by builds that ended.

mod affinity;
mod consume;
mod latest;
mod locks;
mod notify;
mod produce;
mod project;
mod remove;
mod repair;
mod slots;

pub use affinity::{Affinity, Elsewhere, HandTo, AFFINITY_TTL};
pub use consume::{Job, StreamReader};
pub use locks::MaintenanceLock;
pub use produce::{Admission, Preflight, Quota, QuotaHit, QuotaLimits};
pub use project::{GateRead, ProjectGate, GATE_TTL_SECS};

use redis::AsyncCommands;

use crate::redis::{Keys, Redis, RedisError, Signatures};

/// The one consumer group all builder daemons read from.
pub const CONSUMER_GROUP: &str = "builders";

/// The stream field that marks an entry put back for a build whose claim was lost.
const TAKE_OVER_FIELD: &str = "take_over";

/// The stream field naming the builder a build prefers (the one that last built its project).
const PREFER_FIELD: &str = "prefer";

/// The build stream and the in-flight claims.
#[derive(Debug, Clone)]
pub struct Queue {
    redis: Redis,
    keys: Keys,
}

impl Queue {
    pub fn new(redis: Redis, keys: Keys) -> Self {
        Self { redis, keys }
    }

    /// The same queue over another connection ([`Redis::another`]).
    pub fn on_another_connection(&self) -> Result<Self, RedisError> {
        Ok(Self::new(self.redis.another()?, self.keys.clone()))
    }

    /// The used request signatures, on this queue's connection.
    pub fn signatures(&self) -> Signatures {
        Signatures::new(self.redis.clone(), self.keys.clone())
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Entries in the stream: waiting plus being built.
    pub async fn depth(&self) -> Result<u64, RedisError> {
        let mut conn = self.redis.conn();
        Ok(conn.xlen(self.keys.stream()).await?)
    }
}
