//! PostgreSQL stopped for 10 s mid-run (`stop_postgres`: a fast shutdown that cuts every
//! connection), then started again. Meanwhile the API is probed every 400 ms: reading a build,
//! submitting one and `/readyz` must each answer 503. The daemons must stay up, wait, and
//! finish every build once Postgres is back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{start_fleet, wait_for_builders, Ctx, DAEMONS};
use crate::check::{self, Expect, Sampler};
use crate::farm::{Farm, FarmOptions};
use crate::load::{self, SharedLedger};
use crate::project::Recipe;
use crate::report::Row;

const DOWN: Duration = Duration::from_secs(10);
const PROBE_EVERY: Duration = Duration::from_millis(400);

pub async fn run(ctx: &Ctx) -> anyhow::Result<Row> {
    let started = Instant::now();
    let (builds, projects) = if ctx.short { (6, 3) } else { (30, 10) };
    let farm = Arc::new(Farm::start(&ctx.env, "postgres", FarmOptions::default()).await?);
    start_fleet(&farm).await?;
    let sampler = Sampler::start(farm.clone());
    let plans = load::plans(&mut ctx.rng(3), "pg", projects, builds, 3_000);
    let ledger = SharedLedger::default();
    let submitting = tokio::spawn(load::run_plans(
        farm.clone(),
        ledger.clone(),
        plans,
        Instant::now() + Duration::from_secs(if ctx.short { 120 } else { 600 }),
    ));

    // Mid-run: a third of the builds accepted and something running.
    let wait_from = Instant::now();
    while wait_from.elapsed() < Duration::from_secs(60) {
        let running: i64 = sqlx::query_scalar("select count(*) from versions where status = 'running'")
            .fetch_one(&farm.db)
            .await
            .unwrap_or(0);
        if load::accepted_count(&ledger) >= builds / 3 && running > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let known = ledger
        .lock()
        .expect("ledger lock")
        .accepted
        .first()
        .map(|s| s.id.clone())
        .unwrap_or_default();
    ctx.env.stop_postgres().await?;
    let stopped = Instant::now();
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut slowest = Duration::ZERO;
    while stopped.elapsed() + PROBE_EVERY < DOWN {
        let probe_started = Instant::now();
        let probes = [
            ("GET /v1/builds/{id}", farm.get(&format!("/v1/builds/{known}")).await),
            (
                "POST /v1/builds",
                load::submit_once(&farm, &ledger, "chaos", "pg-probe", &Recipe::quick(0, 2)).await,
            ),
            ("GET /readyz", farm.get("/readyz").await),
        ];
        slowest = slowest.max(probe_started.elapsed());
        for (what, answer) in probes {
            let said = match &answer {
                Ok((status, _)) => status.to_string(),
                Err(e) => format!("no answer ({e})"),
            };
            *answers.entry(format!("{what} -> {said}")).or_default() += 1;
            if !matches!(answer, Ok((503, _))) {
                wrong.push(format!("while Postgres was down, {what} answered {said}"));
            }
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    ctx.env.start_postgres().await?;
    let down_for = stopped.elapsed();

    submitting.await?;
    let samples = sampler.finish().await;
    let resumed = wait_for_builders(&farm, &DAEMONS, Duration::from_secs(30)).await;
    let ledger = std::mem::take(&mut *ledger.lock().expect("ledger lock"));
    let mut verdict = check::verify(&farm, &ledger, &samples, &Expect::default(), Duration::from_secs(120)).await?;
    verdict.violations.extend(wrong);
    if let Err(e) = resumed {
        verdict.violations.push(format!("the daemons did not all come back: {e:#}"));
    }
    verdict.notes.push(format!(
        "Postgres was down {:.1} s; probes: {answers:?}; slowest round of probes {} ms",
        down_for.as_secs_f64(),
        slowest.as_millis()
    ));
    verdict.notes.push(format!(
        "{} requests refused with 503 while Postgres was down; {} samples of running builds missed",
        ledger.refused.len(),
        samples.missed
    ));
    farm.stop().await;
    Ok(Row {
        scenario: "postgres".into(),
        verdict,
        kills: 1,
        secs: started.elapsed().as_secs_f64(),
    })
}
