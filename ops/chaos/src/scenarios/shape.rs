//! The shape every scenario has, so that a scenario's file holds only its disruption and its
//! checks: a farm of its own with its daemons, a load submitted the way a back end does (when
//! the scenario has one), the disruption while it runs, then every invariant checked
//! ([`crate::check`]) and the scenario's own checks. A scenario fills in [`Scenario`]; [`run`]
//! does the rest and makes its row of the report.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Ctx;
use crate::check::{self, Expect, Sampler, Samples, Verdict};
use crate::farm::{Farm, FarmOptions};
use crate::load::{self, Ledger, Plan, SharedLedger};
use crate::report::Row;

/// How long the checks wait for the farm to settle once the scenario is over.
const SETTLE: Duration = Duration::from_secs(120);

/// The builds a scenario submits in the background while it disrupts the farm.
pub struct Load {
    pub plans: Vec<Plan>,
    /// How many builds the plans hold (a third of them accepted is "mid-run").
    pub builds: usize,
    /// How long from now each plan may keep trying to have its builds accepted.
    pub limit: Duration,
}

/// A scenario under way: its farm, the answers the API gave so far, and its load.
pub struct LoadRun {
    /// When the scenario started (before its farm).
    pub started: Instant,
    pub farm: Arc<Farm>,
    pub ledger: SharedLedger,
    builds: usize,
    submitting: Mutex<Option<JoinHandle<()>>>,
}

impl LoadRun {
    /// Waits (at most a minute) until the load is under way: a third of its builds accepted
    /// and something running.
    pub async fn wait_for_mid_run(&self) {
        load::wait_for_mid_run(&self.farm, &self.ledger, self.builds).await;
    }

    /// Waits until the load is all submitted (or given up at its deadline); at once when there
    /// is none or it was waited for already.
    pub async fn submitted(&self) -> anyhow::Result<()> {
        let handle = self.submitting.lock().expect("submitting lock").take();
        if let Some(handle) = handle {
            handle.await?;
        }
        Ok(())
    }
}

/// A scenario over: its farm, every answer of the API, and the samples of running builds.
pub struct Checked {
    pub farm: Arc<Farm>,
    pub ledger: Ledger,
    pub samples: Samples,
}

/// One chaos scenario.
#[allow(async_fn_in_trait)]
pub trait Scenario: Sized {
    /// Its name on the command line, and its farm's (database, Redis prefix, folder).
    const NAME: &'static str;
    /// Its name in the report.
    const ROW: &'static str;
    /// What the disruption saw, for the checks.
    type Seen;

    /// Starts the farm's daemons and waits until they heartbeat; keeps what the disruption
    /// will need.
    async fn prepare(ctx: &Ctx, farm: &Farm) -> anyhow::Result<Self>;

    /// The load submitted while the scenario disrupts the farm; none by default (the scenario
    /// submits its own builds).
    fn load(&mut self, _ctx: &Ctx) -> Option<Load> {
        None
    }

    /// The disruption, while the load is submitted. The run waits for the rest of the load
    /// once it returns.
    async fn disrupt(&mut self, ctx: &Ctx, run: &LoadRun) -> anyhow::Result<Self::Seen>;

    /// What the invariants allow besides `deployed` and `superseded`.
    fn expect(&self, _seen: &Self::Seen) -> Expect {
        Expect::default()
    }

    /// The scenario's own checks and notes, once the invariants are checked; returns the
    /// faults it injected.
    async fn check(self, run: &Checked, seen: Self::Seen, verdict: &mut Verdict) -> anyhow::Result<usize>;
}

/// Runs scenario `S`: its farm, its load and disruption, every check; its row of the report.
pub async fn run<S: Scenario>(ctx: &Ctx) -> anyhow::Result<Row> {
    let started = Instant::now();
    let farm = Arc::new(Farm::start(&ctx.env, S::NAME, FarmOptions::default()).await?);
    let mut scenario = S::prepare(ctx, &farm).await?;
    let sampler = Sampler::start(farm.clone());
    let ledger = SharedLedger::default();
    let (builds, submitting) = match scenario.load(ctx) {
        Some(load) => (
            load.builds,
            Some(tokio::spawn(load::run_plans(
                farm.clone(),
                ledger.clone(),
                load.plans,
                Instant::now() + load.limit,
            ))),
        ),
        None => (0, None),
    };
    let run = LoadRun {
        started,
        farm,
        ledger,
        builds,
        submitting: Mutex::new(submitting),
    };
    let seen = scenario.disrupt(ctx, &run).await?;
    run.submitted().await?;
    let samples = sampler.finish().await;
    let ledger = std::mem::take(&mut *run.ledger.lock().expect("ledger lock"));
    let expect = scenario.expect(&seen);
    let mut verdict = check::verify(&run.farm, &ledger, &samples, &expect, SETTLE).await?;
    let checked = Checked {
        farm: run.farm,
        ledger,
        samples,
    };
    let kills = scenario.check(&checked, seen, &mut verdict).await?;
    checked.farm.stop().await;
    Ok(Row {
        scenario: S::ROW.into(),
        verdict,
        kills,
        secs: started.elapsed().as_secs_f64(),
    })
}
