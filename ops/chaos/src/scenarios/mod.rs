//! The scenarios. Each starts a farm of its own (database, Redis prefix, artifact store,
//! processes), injects its faults, then checks every invariant ([`crate::check`]).

pub mod cancel;
pub mod kills;
pub mod partition;
pub mod postgres;
pub mod redis;

use std::time::Duration;

use anyhow::bail;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::time::Instant;

use crate::env::ChaosEnv;
use crate::farm::Farm;

/// What every scenario gets.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub env: ChaosEnv,
    /// The short form (part of ops/test.sh): a few builds per scenario.
    pub short: bool,
    pub seed: u64,
}

impl Ctx {
    /// A random source of the scenario's own, from the run's seed.
    pub fn rng(&self, salt: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

/// The daemons of the fleet scenarios.
pub const DAEMONS: [&str; 3] = ["d1", "d2", "d3"];

/// Starts `DAEMONS` on `farm`, and waits until each heartbeats.
pub async fn start_fleet(farm: &Farm) -> anyhow::Result<()> {
    for name in DAEMONS {
        farm.start_daemon(name, None)?;
    }
    wait_for_builders(farm, &DAEMONS, Duration::from_secs(90)).await
}

/// Waits until every one of `names` has heartbeated within the last 2 s.
pub async fn wait_for_builders(farm: &Farm, names: &[&str], limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Ok((200, fleet)) = farm.get("/v1/builders").await {
            let live: Vec<&str> = fleet["builders"]
                .as_array()
                .map(|b| {
                    b.iter()
                        .filter(|b| b["lastSeenMsAgo"].as_i64().is_some_and(|ms| ms < 2_000))
                        .filter_map(|b| b["id"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            if names.iter().all(|n| live.contains(n)) {
                return Ok(());
            }
        }
        farm.note_exits();
        if started.elapsed() > limit {
            bail!(
                "builders {names:?} did not all heartbeat within {} s",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until build `id` satisfies `done` (on its `GET /v1/builds/{id}` view).
pub async fn wait_for_build(
    farm: &Farm,
    id: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    loop {
        if let Ok(build) = farm.build(id).await {
            if done(&build) {
                return Ok(build);
            }
            if started.elapsed() > limit {
                bail!("build {id} never {what} within {} s: {build}", limit.as_secs());
            }
        } else if started.elapsed() > limit {
            bail!("build {id} could not be read for {} s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
