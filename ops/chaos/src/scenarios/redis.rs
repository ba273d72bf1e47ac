//! Redis `kill -9`ed mid-run and started again on its append-only file (`appendonly yes`,
//! `appendfsync everysec`, as run.sh starts it): the stream, its pending entries and the
//! project slots must come back exactly as they were, and every build must end.
//!
//! Right before the kill, `CLIENT PAUSE WRITE` stops every client's writes so that the snapshot
//! taken then is exactly what Redis held when it died. While Redis is down, a second
//! redis-server started on a copy of its files shows what the restart will load, before any
//! daemon can change it; the two snapshots must be equal.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::time::Instant;

use super::{start_fleet, Ctx};
use crate::check::{self, Expect, Sampler};
use crate::farm::{Farm, FarmOptions};
use crate::load::{self, SharedLedger};
use crate::report::Row;

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

pub async fn run(ctx: &Ctx) -> anyhow::Result<Row> {
    let started = Instant::now();
    let (builds, projects) = if ctx.short { (6, 3) } else { (40, 10) };
    let farm = Arc::new(Farm::start(&ctx.env, "redis", FarmOptions::default()).await?);
    start_fleet(&farm).await?;
    let sampler = Sampler::start(farm.clone());
    let plans = load::plans(&mut ctx.rng(2), "redis", projects, builds, 2_000);
    let ledger = SharedLedger::default();
    let submitting = tokio::spawn(load::run_plans(
        farm.clone(),
        ledger.clone(),
        plans,
        Instant::now() + Duration::from_secs(if ctx.short { 120 } else { 600 }),
    ));

    load::wait_for_mid_run(&farm, &ledger, builds).await;
    let mut conn = farm.redis().await?;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(10_000)
        .arg("WRITE")
        .query_async(&mut conn)
        .await?;
    let before = snapshot(&farm, &mut conn).await?;
    ctx.env.kill_redis().await?;
    let killed = Instant::now();
    // What the append-only file holds, read from a copy of it (the daemons would change the
    // real Redis as soon as it is back).
    let copy = farm.dir.join("redis-copy");
    let port = crate::farm::free_port()?;
    ctx.env.start_redis_copy(&copy, port).await?;
    let after = async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        snapshot(&farm, &mut client.get_multiplexed_async_connection().await?).await
    }
    .await;
    ctx.env.stop_redis_copy(&copy).await?;
    let after = after?;
    tokio::time::sleep_until(killed + DOWN).await;
    ctx.env.start_redis().await?;
    let down_for = killed.elapsed();

    submitting.await?;
    let samples = sampler.finish().await;
    let ledger = std::mem::take(&mut *ledger.lock().expect("ledger lock"));
    let mut verdict = check::verify(
        &farm,
        &ledger,
        &samples,
        &Expect::default(),
        Duration::from_secs(120),
    )
    .await?;
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
    farm.stop().await;
    Ok(Row {
        scenario: "redis".into(),
        verdict,
        kills: 1,
        secs: started.elapsed().as_secs_f64(),
    })
}
