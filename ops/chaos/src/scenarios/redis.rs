//! Redis `kill -9`ed mid-run and started again on its append-only file (`appendonly yes`,
//! `appendfsync everysec`, as run.sh starts it): the stream, its pending entries and the
//! project slots must come back exactly as they were, and every build must end.
//!
//! Right before the kill, `CLIENT PAUSE WRITE` stops every client's writes so that the snapshot
//! taken then is exactly what Redis held when it died. While Redis is down, a second
//! redis-server started on a copy of its files shows what the restart will load, before any
//! daemon can change it; the two snapshots must be equal.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::time::Instant;

use super::shape::{Checked, Load, LoadRun, Scenario};
use super::{start_fleet, Ctx};
use crate::check::Verdict;
use crate::farm::Farm;
use crate::load;

/// How long Redis stays down.
const DOWN: Duration = Duration::from_secs(2);

/// What Redis holds for the farm: stream entries, pending entries and their owners, slots.
#[derive(Debug, PartialEq, Eq, Default)]
struct Snapshot {
    entries: Vec<String>,
    pending: BTreeMap<String, String>,
    slots: BTreeMap<String, String>,
}

async fn snapshot(farm: &Farm, conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<Snapshot> {
    let keys = farm.keys();
    let stream = keys.stream();
    let range: redis::streams::StreamRangeReply = conn.xrange_all(&stream).await?;
    let pending: redis::streams::StreamPendingCountReply = conn
        .xpending_count(&stream, kiln_shared::redis::CONSUMER_GROUP, "-", "+", 10_000)
        .await?;
    let pattern = format!("{}:inflight:*", farm.redis_prefix);
    let slot_keys: Vec<String> = conn.keys(&pattern).await?;
    let mut slots = BTreeMap::new();
    for k in slot_keys {
        let holder: Option<String> = conn.get(&k).await?;
        slots.insert(k, holder.unwrap_or_default());
    }
    Ok(Snapshot {
        entries: range.ids.into_iter().map(|e| e.id).collect(),
        pending: pending.ids.into_iter().map(|p| (p.id, p.consumer)).collect(),
        slots,
    })
}

/// The scenario: the fleet under load, and Redis killed mid-run.
pub struct RedisKill;

/// What Redis held at the kill, what its files held, and how long it was down.
pub struct Seen {
    before: Snapshot,
    after: Snapshot,
    down_for: Duration,
}

impl Scenario for RedisKill {
    const NAME: &'static str = "redis";
    const ROW: &'static str = "redis";
    type Seen = Seen;

    async fn prepare(_ctx: &Ctx, farm: &Farm) -> anyhow::Result<Self> {
        start_fleet(farm).await?;
        Ok(Self)
    }

    fn load(&mut self, ctx: &Ctx) -> Option<Load> {
        let (builds, projects) = if ctx.short { (6, 3) } else { (40, 10) };
        Some(Load {
            plans: load::plans(&mut ctx.rng(2), "redis", projects, builds, 2_000),
            builds,
            limit: Duration::from_secs(if ctx.short { 120 } else { 600 }),
        })
    }

    async fn disrupt(&mut self, ctx: &Ctx, run: &LoadRun) -> anyhow::Result<Seen> {
        let farm = &run.farm;
        run.wait_for_mid_run().await;
        let mut conn = farm.redis().await?;
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(10_000)
            .arg("WRITE")
            .query_async(&mut conn)
            .await?;
        let before = snapshot(farm, &mut conn).await?;
        ctx.env.kill_redis().await?;
        let killed = Instant::now();
        // What the append-only file holds, read from a copy of it (the daemons would change the
        // real Redis as soon as it is back).
        let copy = farm.dir.join("redis-copy");
        let port = crate::farm::free_port()?;
        ctx.env.start_redis_copy(&copy, port).await?;
        let after = async {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
            snapshot(farm, &mut client.get_multiplexed_async_connection().await?).await
        }
        .await;
        ctx.env.stop_redis_copy(&copy).await?;
        let after = after?;
        tokio::time::sleep_until(killed + DOWN).await;
        ctx.env.start_redis().await?;
        let down_for = killed.elapsed();
        Ok(Seen {
            before,
            after,
            down_for,
        })
    }

    async fn check(self, run: &Checked, seen: Seen, verdict: &mut Verdict) -> anyhow::Result<usize> {
        let Seen {
            before,
            after,
            down_for,
        } = seen;
        let ledger = &run.ledger;
        if before != after {
            verdict.violations.push(format!(
                "Redis came back from its append-only file with other contents: before {before:?}, after {after:?}"
            ));
        }
        verdict.notes.push(format!(
            "Redis was down {:.1} s; at the kill it held {} stream entries ({} being built) and {} project slots; \
             its append-only file held the same: {}",
            down_for.as_secs_f64(),
            before.entries.len(),
            before.pending.len(),
            before.slots.len(),
            before == after
        ));
        verdict.notes.push(format!(
            "{} requests refused with 503 while Redis was down; retried with their Idempotency-Key, \
             requests were answered 409 \"still being processed\" {} times, for up to {:.1} s",
            ledger.refused.len(),
            ledger.in_progress,
            ledger.longest_in_progress.as_secs_f64()
        ));
        Ok(1)
    }
}
