//! 3 daemons, many builds over many projects, and every few seconds one daemon `kill -9`ed at a
//! random moment (a busy one when there is one) and started again under its name a moment later.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{start_fleet, Ctx};
use crate::check::{self, Expect, Sampler};
use crate::farm::{Farm, FarmOptions};
use crate::load::{self, SharedLedger};
use crate::report::Row;

#[derive(Debug, Default)]
struct Kills {
    count: usize,
    /// Build processes alive right after their daemon was killed.
    orphans: BTreeSet<i32>,
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<Row> {
    let started = Instant::now();
    let (builds, projects) = if ctx.short { (8, 4) } else { (200, 40) };
    let farm = Arc::new(Farm::start(&ctx.env, "kills", FarmOptions::default()).await?);
    start_fleet(&farm).await?;
    let sampler = Sampler::start(farm.clone());
    let mut rng = ctx.rng(1);
    let plans = load::plans(&mut rng, "kill", projects, builds, 3_000);
    let ledger = SharedLedger::default();
    let limit = Duration::from_secs(if ctx.short { 150 } else { 1_200 });
    let submitting = tokio::spawn(load::run_plans(
        farm.clone(),
        ledger.clone(),
        plans,
        Instant::now() + limit,
    ));
    let stop = CancellationToken::new();
    // The short form stops killing after a few kills, so that its time stays bounded.
    let max_kills = if ctx.short { 6 } else { usize::MAX };
    let killer = tokio::spawn(killer(farm.clone(), rng, stop.clone(), max_kills));

    submitting.await?;
    // Kill on until every build has ended (or the time is up).
    let until = started + limit;
    while Instant::now() < until && active(&farm).await > 0 {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.cancel();
    let kills = killer.await??;
    for name in super::DAEMONS {
        if !farm.running_daemons().iter().any(|d| d == name) {
            farm.restart_daemon(name)?;
        }
    }
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
    let still = kills.orphans.iter().filter(|p| crate::procs::alive(**p)).count();
    verdict.notes.push(format!(
        "{} build processes were still running right after their daemon's kill -9 (orphans: no \
         daemon stops them); {still} of them still run now",
        kills.orphans.len()
    ));
    verdict.notes.push(format!(
        "{} requests answered 409 while their project had a build in flight; {} samples of running builds",
        ledger.conflicts, samples.taken
    ));
    farm.stop().await;
    Ok(Row {
        scenario: "kill -9".into(),
        verdict,
        kills: kills.count,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// Builds queued or running now.
async fn active(farm: &Farm) -> i64 {
    sqlx::query_scalar("select count(*) from versions where status in ('queued', 'running')")
        .fetch_one(&farm.db)
        .await
        .unwrap_or(1)
}

async fn killer(
    farm: Arc<Farm>,
    mut rng: StdRng,
    stop: CancellationToken,
    max_kills: usize,
) -> anyhow::Result<Kills> {
    let mut kills = Kills::default();
    while kills.count < max_kills {
        let wait = Duration::from_millis(rng.gen_range(2_000..=5_000));
        tokio::select! {
            () = stop.cancelled() => return Ok(kills),
            () = tokio::time::sleep(wait) => {}
        }
        let busy: Vec<String> = sqlx::query_scalar(
            "select builder_id from versions where status = 'running' and builder_id is not null",
        )
        .fetch_all(&farm.db)
        .await
        .unwrap_or_default();
        let running = farm.running_daemons();
        let busy_running: Vec<&String> = running.iter().filter(|d| busy.contains(d)).collect();
        let victim = if busy_running.is_empty() {
            if running.is_empty() {
                continue;
            }
            running[rng.gen_range(0..running.len())].clone()
        } else {
            busy_running[rng.gen_range(0..busy_running.len())].clone()
        };
        let orphans = farm.kill_daemon(&victim).await?;
        kills.count += 1;
        kills.orphans.extend(orphans.iter().map(|p| p.pid));
        tracing::info!(victim, orphans = orphans.len(), "kill -9");
        tokio::time::sleep(Duration::from_millis(rng.gen_range(300..=1_500))).await;
        farm.restart_daemon(&victim)?;
    }
    Ok(kills)
}
