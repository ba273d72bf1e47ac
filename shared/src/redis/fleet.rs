//! The live builders: each daemon heartbeats its capacity; a builder that stops heartbeating
//! drops out after the lease. Timed by Redis's clock, so builders' clocks may disagree.

use std::sync::LazyLock;
use std::time::Duration;

use super::connection::Redis;
use super::error::RedisError;
use super::keys::Keys;

/// How often a builder heartbeats, and how long after its last heartbeat it counts as alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
pub const LEASE: Duration = Duration::from_secs(15);

static HEARTBEAT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("heartbeat.lua")));
static LIVE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("fleet_live.lua")));
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

/// One live builder as its last heartbeat described it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveBuilder {
    pub id: String,
    /// How long ago (by Redis's clock) it last heartbeated.
    pub seen_ms_ago: i64,
    pub report: serde_json::Value,
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

    /// Records that builder `id` is alive and runs up to `capacity` builds at once, with what
    /// it says of itself (`report`, shown by `GET /v1/builders`).
    pub async fn heartbeat(
        &self,
        id: &str,
        capacity: usize,
        report: &serde_json::Value,
    ) -> Result<(), RedisError> {
        let _: i64 = HEARTBEAT
            .key(self.keys.builders())
            .key(self.keys.builder(id))
            .arg(id)
            .arg(capacity)
            .arg(self.lease.as_millis() as u64)
            .arg(report.to_string())
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(())
    }

    /// The live builders: id, when Redis last heard from it (ms), and its report; sorted by id.
    pub async fn live(&self) -> Result<Vec<LiveBuilder>, RedisError> {
        let mut raw: Vec<String> = LIVE
            .key(self.keys.builders())
            .arg(self.lease.as_millis() as u64)
            .arg(self.keys.builder(""))
            .invoke_async(&mut self.redis.conn())
            .await?;
        let now: i64 = raw.pop().and_then(|n| n.parse().ok()).unwrap_or_default();
        let mut out: Vec<LiveBuilder> = raw
            .chunks_exact(3)
            .map(|c| {
                let seen: i64 = c[1].parse().unwrap_or_default();
                LiveBuilder {
                    id: c[0].clone(),
                    seen_ms_ago: (now - seen).max(0),
                    report: serde_json::from_str(&c[2]).unwrap_or_default(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Removes builder `id` at once (a clean shutdown), and its nudges stream (builds still
    /// handed to it are taken by other daemons once their deadline passes).
    pub async fn leave(&self, id: &str) -> Result<(), RedisError> {
        redis::pipe()
            .zrem(self.keys.builders(), id)
            .ignore()
            .del(self.keys.builder(id))
            .ignore()
            .del(self.keys.nudges(id))
            .ignore()
            .query_async::<()>(&mut self.redis.conn())
            .await?;
        Ok(())
    }

    pub async fn capacity(&self) -> Result<FleetCapacity, RedisError> {
        let (builders, slots): (u64, u64) = CAPACITY
            .key(self.keys.builders())
            .arg(self.lease.as_millis() as u64)
            .arg(self.keys.builder(""))
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(FleetCapacity { builders, slots })
    }
}
