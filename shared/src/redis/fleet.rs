//! The live builders: each daemon heartbeats its capacity; a builder that stops heartbeating
//! drops out after the lease. Timed by Redis's clock, so builders' clocks may disagree.

use std::sync::LazyLock;
use std::time::Duration;

use super::{Keys, QueueError, Redis};

/// How often a builder heartbeats, and how long after its last heartbeat it counts as alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
pub const LEASE: Duration = Duration::from_secs(15);

static HEARTBEAT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("heartbeat.lua")));
static CAPACITY: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("fleet_capacity.lua")));

/// The fleet as seen now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetCapacity {
    /// Builders that heartbeated within the lease.
    pub builders: u64,
    /// Their summed concurrency: builds the fleet runs at once.
    pub slots: u64,
}

#[derive(Debug, Clone)]
pub struct Fleet {
    redis: Redis,
    keys: Keys,
    lease: Duration,
}

impl Fleet {
    pub fn new(redis: Redis, keys: Keys, lease: Duration) -> Self {
        Self { redis, keys, lease }
    }

    /// Records that builder `id` is alive and runs up to `capacity` builds at once.
    pub async fn heartbeat(&self, id: &str, capacity: usize) -> Result<(), QueueError> {
        let _: i64 = HEARTBEAT
            .key(self.keys.builders())
            .key(self.keys.builder(id))
            .arg(id)
            .arg(capacity)
            .arg(self.lease.as_millis() as u64)
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(())
    }

    /// Removes builder `id` at once (a clean shutdown).
    pub async fn leave(&self, id: &str) -> Result<(), QueueError> {
        redis::pipe()
            .zrem(self.keys.builders(), id)
            .ignore()
            .del(self.keys.builder(id))
            .ignore()
            .query_async::<()>(&mut self.redis.conn())
            .await?;
        Ok(())
    }

    pub async fn capacity(&self) -> Result<FleetCapacity, QueueError> {
        let (builders, slots): (u64, u64) = CAPACITY
            .key(self.keys.builders())
            .arg(self.lease.as_millis() as u64)
            .arg(self.keys.builder(""))
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(FleetCapacity { builders, slots })
    }
}
