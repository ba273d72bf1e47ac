//! PostgreSQL stopped for 10 s mid-run (`stop_postgres`: a fast shutdown that cuts every
//! connection), then started again. Meanwhile the API is probed every 400 ms: reading a build,
//! submitting one and `/readyz` must each answer 503. The daemons must stay up, wait, and
//! finish every build once Postgres is back (each heartbeats again once the load is in).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::shape::{Checked, Load, LoadRun, Scenario};
use super::{start_fleet, wait_for_builders, Ctx, DAEMONS};
use crate::check::Verdict;
use crate::farm::Farm;
use crate::load::{self, SharedLedger};
use crate::project::Recipe;

const DOWN: Duration = Duration::from_secs(10);
const PROBE_EVERY: Duration = Duration::from_millis(400);

/// The scenario: the fleet under load, Postgres stopped mid-run, the API probed meanwhile.
pub struct PostgresStop;

/// How long Postgres was down and when it was asked to start; each probe's answers; whether
/// the daemons all heartbeat again once the load was in.
pub struct Seen {
    down_for: Duration,
    restarted: Instant,
    probes: Vec<(Probe, Vec<Answer>)>,
    resumed: anyhow::Result<()>,
}

impl Scenario for PostgresStop {
    const NAME: &'static str = "postgres";
    const ROW: &'static str = "postgres";
    type Seen = Seen;

    async fn prepare(_ctx: &Ctx, farm: &Farm) -> anyhow::Result<Self> {
        start_fleet(farm).await?;
        Ok(Self)
    }

    fn load(&mut self, ctx: &Ctx) -> Option<Load> {
        let (builds, projects) = if ctx.short { (6, 3) } else { (30, 10) };
        Some(Load {
            plans: load::plans(&mut ctx.rng(3), "pg", projects, builds, 3_000),
            builds,
            limit: Duration::from_secs(if ctx.short { 120 } else { 600 }),
        })
    }

    async fn disrupt(&mut self, ctx: &Ctx, run: &LoadRun) -> anyhow::Result<Seen> {
        let farm = &run.farm;
        run.wait_for_mid_run().await;
        let known = run
            .ledger
            .lock()
            .expect("ledger lock")
            .accepted
            .first()
            .map(|s| s.id.clone())
            .unwrap_or_default();
        ctx.env.stop_postgres().await?;
        let stopped = Instant::now();
        let probes = [Probe::Read(known), Probe::Submit, Probe::Ready]
            .map(|what| tokio::spawn(probe(farm.clone(), run.ledger.clone(), what, stopped)));
        tokio::time::sleep_until(stopped + DOWN).await;
        // Postgres may take connections from the moment it is asked to start.
        let restarted = Instant::now();
        ctx.env.start_postgres().await?;
        let down_for = stopped.elapsed();

        run.submitted().await?;
        let resumed = wait_for_builders(farm, &DAEMONS, Duration::from_secs(30)).await;
        let mut answers = Vec::new();
        for handle in probes {
            answers.push(handle.await?);
        }
        Ok(Seen {
            down_for,
            restarted,
            probes: answers,
            resumed,
        })
    }

    async fn check(self, run: &Checked, seen: Seen, verdict: &mut Verdict) -> anyhow::Result<usize> {
        let mut answers = Vec::new();
        for (what, probes) in seen.probes {
            let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
            for p in &probes {
                let waited = (p.answered_at - p.asked_at).as_secs_f64();
                let said = if p.answered_at > seen.restarted {
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
        if let Err(e) = seen.resumed {
            verdict
                .violations
                .push(format!("the daemons did not all come back: {e:#}"));
        }
        verdict.notes.push(format!(
            "Postgres was down {:.1} s; the API answered: {}",
            seen.down_for.as_secs_f64(),
            answers.join("; ")
        ));
        verdict.notes.push(format!(
            "{} requests refused with 503 while Postgres was down; {} samples of running builds missed",
            run.ledger.refused.len(),
            run.samples.missed
        ));
        Ok(1)
    }
}

#[derive(Debug, Clone)]
pub enum Probe {
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
pub struct Answer {
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
