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

    load::wait_for_mid_run(&farm, &ledger, builds).await;
    let known = ledger
        .lock()
        .expect("ledger lock")
        .accepted
        .first()
        .map(|s| s.id.clone())
        .unwrap_or_default();
    ctx.env.stop_postgres().await?;
    let stopped = Instant::now();
    let probes = [Probe::Read(known), Probe::Submit, Probe::Ready]
        .map(|what| tokio::spawn(probe(farm.clone(), ledger.clone(), what, stopped)));
    tokio::time::sleep_until(stopped + DOWN).await;
    // Postgres may take connections from the moment it is asked to start.
    let restarted = Instant::now();
    ctx.env.start_postgres().await?;
    let down_for = stopped.elapsed();

    submitting.await?;
    let samples = sampler.finish().await;
    let resumed = wait_for_builders(&farm, &DAEMONS, Duration::from_secs(30)).await;
    let ledger = std::mem::take(&mut *ledger.lock().expect("ledger lock"));
    let mut verdict = check::verify(
        &farm,
        &ledger,
        &samples,
        &Expect::default(),
        Duration::from_secs(120),
    )
    .await?;
    let mut answers = Vec::new();
    for handle in probes {
        let (what, probes) = handle.await?;
        let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
        for p in &probes {
            let waited = (p.answered_at - p.asked_at).as_secs_f64();
            let said = if p.answered_at > restarted {
                "no answer while Postgres was down".to_owned()
            } else {
                p.said.clone()
            };
            if said != "503" {
                verdict.violations.push(format!(
                    "while Postgres was down, {} answered {said} (then {} after {waited:.1} s)",
                    what.name(),
                    p.said
                ));
            }
            *statuses.entry(said).or_default() += 1;
        }
        if probes.is_empty() {
            verdict.violations.push(format!(
                "{} was never probed while Postgres was down",
                what.name()
            ));
        }
        let slowest = probes
            .iter()
            .map(|p| p.answered_at - p.asked_at)
            .max()
            .unwrap_or_default();
        answers.push(format!(
            "{} {statuses:?} (slowest {} ms)",
            what.name(),
            slowest.as_millis()
        ));
    }
    if let Err(e) = resumed {
        verdict
            .violations
            .push(format!("the daemons did not all come back: {e:#}"));
    }
    verdict.notes.push(format!(
        "Postgres was down {:.1} s; the API answered: {}",
        down_for.as_secs_f64(),
        answers.join("; ")
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

#[derive(Debug, Clone)]
enum Probe {
    /// `GET /v1/builds/{id}` of a known build.
    Read(String),
    /// `POST /v1/builds` of a new project.
    Submit,
    Ready,
}

impl Probe {
    fn name(&self) -> &'static str {
        match self {
            Probe::Read(_) => "GET /v1/builds/{id}",
            Probe::Submit => "POST /v1/builds",
            Probe::Ready => "GET /readyz",
        }
    }
}

/// One probe's answer (a status, or what went wrong), and when.
#[derive(Debug)]
struct Answer {
    said: String,
    asked_at: Instant,
    answered_at: Instant,
}

/// Asks the API every [`PROBE_EVERY`] (without waiting for the previous answer) while Postgres
/// has been down for less than [`DOWN`] less the longest a 503 may take (the API's pool
/// timeout, 5 s); returns the probe and its answers.
async fn probe(farm: Arc<Farm>, ledger: SharedLedger, what: Probe, stopped: Instant) -> (Probe, Vec<Answer>) {
    let mut asked = tokio::task::JoinSet::new();
    while stopped.elapsed() + Duration::from_millis(5_500) < DOWN {
        let (farm, ledger, what) = (farm.clone(), ledger.clone(), what.clone());
        asked.spawn(async move {
            let asked_at = Instant::now();
            let answer = match &what {
                Probe::Read(id) => farm.get(&format!("/v1/builds/{id}")).await,
                Probe::Submit => {
                    load::submit_once(&farm, &ledger, "chaos", "pg-probe", &Recipe::quick(0, 2)).await
                }
                Probe::Ready => farm.get("/readyz").await,
            };
            let said = match answer {
                Ok((status, _)) => status.to_string(),
                Err(e) => format!("no answer ({e})"),
            };
            Answer {
                said,
                asked_at,
                answered_at: Instant::now(),
            }
        });
        tokio::time::sleep(PROBE_EVERY).await;
    }
    (what, asked.join_all().await)
}
