//! The scenarios. Each starts a farm of its own (database, Redis prefix, artifact store,
//! processes), injects its faults, then checks every invariant ([`crate::check`]): the shape
//! they share is [`shape`]; each scenario's file holds its disruption and its own checks.

pub mod cancel;
pub mod kills;
pub mod partition;
pub mod postgres;
pub mod redis;
pub mod shape;

use std::time::Duration;

use anyhow::bail;
use kiln_testkit::poll::{self, Look};
use rand::rngs::StdRng;
use rand::SeedableRng;

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
    let every = Duration::from_millis(100);
    let heartbeats = poll::until(every, limit, || async {
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
                return Look::Ready(());
            }
        }
        farm.note_exits();
        Look::Seen(())
    });
    if heartbeats.await.is_err() {
        bail!(
            "builders {names:?} did not all heartbeat within {} s",
            limit.as_secs()
        );
    }
    Ok(())
}

/// Waits until build `id` satisfies `done` (on its `GET /v1/builds/{id}` view).
pub async fn wait_for_build(
    farm: &Farm,
    id: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let every = Duration::from_millis(25);
    let ended = poll::until(every, limit, || async {
        match farm.build(id).await {
            Ok(build) if done(&build) => Look::Ready(build),
            // The last view seen, or none when the build could not be read.
            Ok(build) => Look::Seen(Some(build)),
            Err(_) => Look::Seen(None),
        }
    });
    match ended.await {
        Ok(build) => Ok(build),
        Err(t) => match t.last {
            Some(build) => bail!("build {id} never {what} within {} s: {build}", limit.as_secs()),
            None => bail!("build {id} could not be read for {} s", limit.as_secs()),
        },
    }
}
