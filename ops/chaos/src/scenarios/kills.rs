//! 3 daemons, many builds over many projects, and every few seconds one daemon `kill -9`ed at a
//! random moment (a busy one when there is one) and started again under its name a moment later.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::shape::{Checked, Load, LoadRun, Scenario};
use super::{start_fleet, Ctx};
use crate::check::Verdict;
use crate::farm::Farm;
use crate::load;

/// What the killer did.
#[derive(Debug, Default)]
pub struct Kills {
    count: usize,
    /// Build processes alive right after their daemon was killed.
    orphans: BTreeSet<i32>,
}

/// The scenario: the fleet under load, and the killer.
pub struct KillNine {
    /// Draws the load's plans, then the killer's victims and pauses.
    rng: StdRng,
    /// How long the load, and the killing, may last.
    limit: Duration,
}

impl Scenario for KillNine {
    const NAME: &'static str = "kills";
    const ROW: &'static str = "kill -9";
    type Seen = Kills;

    async fn prepare(ctx: &Ctx, farm: &Farm) -> anyhow::Result<Self> {
        start_fleet(farm).await?;
        Ok(Self {
            rng: ctx.rng(1),
            limit: Duration::from_secs(if ctx.short { 150 } else { 1_200 }),
        })
    }

    fn load(&mut self, ctx: &Ctx) -> Option<Load> {
        let (builds, projects) = if ctx.short { (8, 4) } else { (200, 40) };
        Some(Load {
            plans: load::plans(&mut self.rng, "kill", projects, builds, 3_000),
            builds,
            limit: self.limit,
        })
    }

    async fn disrupt(&mut self, ctx: &Ctx, run: &LoadRun) -> anyhow::Result<Kills> {
        let farm = &run.farm;
        let stop = CancellationToken::new();
        // The short form stops killing after a few kills, so that its time stays bounded.
        let max_kills = if ctx.short { 6 } else { usize::MAX };
        let rng = std::mem::replace(&mut self.rng, StdRng::seed_from_u64(0));
        let killer = tokio::spawn(killer(farm.clone(), rng, stop.clone(), max_kills));

        run.submitted().await?;
        // Kill on until every build has ended (or the time is up).
        let until = run.started + self.limit;
        while Instant::now() < until && active(farm).await > 0 {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        stop.cancel();
        let kills = killer.await??;
        for name in super::DAEMONS {
            if !farm.running_daemons().iter().any(|d| d == name) {
                farm.restart_daemon(name)?;
            }
        }
        Ok(kills)
    }

    async fn check(self, run: &Checked, kills: Kills, verdict: &mut Verdict) -> anyhow::Result<usize> {
        let still = kills.orphans.iter().filter(|p| crate::procs::alive(**p)).count();
        verdict.notes.push(format!(
            "{} build processes were still running right after their daemon's kill -9 (orphans: no \
             daemon stops them); {still} of them still run now",
            kills.orphans.len()
        ));
        verdict.notes.push(format!(
            "{} requests answered 409 while their project had a build in flight; {} samples of running builds",
            run.ledger.conflicts, run.samples.taken
        ));
        Ok(kills.count)
    }
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
