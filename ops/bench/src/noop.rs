//! Part `noop`: identical resubmissions. The Vite example is deployed once (its install writes
//! the lockfile the farm keeps); then the whole tree is submitted again, unchanged, `RUNS`
//! times, as an AI builder resends a project after a prompt that changed nothing: each must be
//! reused (`reusedFrom`), and its submit → deployed time is the figure. One forced rebuild
//! (`"force": true`) of the same tree is beside it, for scale.

use anyhow::{bail, Context};
use kiln_shared::domain::read_tree;
use serde_json::json;

use crate::farm::{Env, Farm};
use crate::stats::{self, median, percentile};
use crate::summary::{Outcome, Summary};

pub const RUNS: usize = 50;
pub const TARGET_MEDIAN_MS: f64 = 50.0;
const USER: &str = "bench-user";
const PROJECT: &str = "noop";

#[derive(Debug, Clone)]
pub struct Report {
    /// Submit → deployed of each identical resubmission.
    pub noop_ms: Vec<f64>,
    /// The POST alone, of each.
    pub submit_ms: Vec<f64>,
    /// Submit → deployed of the forced rebuild.
    pub forced_ms: f64,
}

impl Report {
    fn pass(&self) -> bool {
        median(&self.noop_ms) <= TARGET_MEDIAN_MS
    }
}

impl Summary for Report {
    fn print(&self) -> Outcome {
        println!(
            "noop        identical resubmission submit -> deployed  median {:.1} ms  p99 {:.1} ms  (POST median {:.1} ms; forced rebuild {:.2} s)  target median <= {} ms  {}",
            median(&self.noop_ms),
            percentile(&self.noop_ms, 99.0),
            median(&self.submit_ms),
            self.forced_ms / 1000.0,
            TARGET_MEDIAN_MS,
            stats::verdict(self.pass())
        );
        Outcome::met(self.pass())
    }
}

pub async fn run(env: &Env, example: &std::path::Path) -> anyhow::Result<Report> {
    let farm = Farm::start(env, 1).await?;
    let result = measure(&farm, example).await;
    let dir = farm.stop().await;
    tokio::task::spawn_blocking(move || drop(dir)).await?;
    let report = result?;
    println!(
        "-- noop: {RUNS} identical resubmissions of the Vite example (whole tree), one forced rebuild --"
    );
    println!(
        "noop ms p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
        percentile(&report.noop_ms, 50.0),
        percentile(&report.noop_ms, 90.0),
        percentile(&report.noop_ms, 99.0),
        percentile(&report.noop_ms, 100.0),
    );
    Ok(report)
}

async fn measure(farm: &Farm, example: &std::path::Path) -> anyhow::Result<Report> {
    let files = read_tree(example).with_context(|| format!("reading {}", example.display()))?;
    let body = json!({ "userId": USER, "projectId": PROJECT, "files": files });
    let first = farm.build(&body).await.context("the first build")?;
    eprintln!(
        "[bench] noop: first build {:.1} s, not counted",
        first.elapsed.as_secs_f64()
    );
    let mut report = Report {
        noop_ms: Vec::with_capacity(RUNS),
        submit_ms: Vec::with_capacity(RUNS),
        forced_ms: f64::NAN,
    };
    for k in 0..RUNS {
        let b = farm
            .build(&body)
            .await
            .with_context(|| format!("resubmission {k}"))?;
        if b.view["reusedFrom"] != first.id.as_str() {
            bail!(
                "resubmission {k} ({}) was not reused from {}: {}",
                b.id,
                first.id,
                b.view
            );
        }
        report.noop_ms.push(stats::ms(b.elapsed));
        report.submit_ms.push(stats::ms(b.submit));
    }
    eprintln!(
        "[bench] noop: median {:.1} ms  p99 {:.1} ms",
        median(&report.noop_ms),
        percentile(&report.noop_ms, 99.0)
    );
    let mut forced = body.clone();
    forced["force"] = json!(true);
    let built = farm.build(&forced).await.context("the forced rebuild")?;
    if !built.view["reusedFrom"].is_null() {
        bail!("the forced rebuild was reused: {}", built.view);
    }
    report.forced_ms = stats::ms(built.elapsed);
    Ok(report)
}
