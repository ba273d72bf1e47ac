//! Part 4: rollback and latest-pointer reads.
//!
//! - Rollback latency: from sending `POST /v1/projects/{u}/{p}/rollback` to the project's latest
//!   URL serving the target (the preview answers with `X-Kiln-Version` = the new rollback
//!   version), over 1,000 rollbacks alternating between two versions of the Vite example, beside
//!   the submit → deployed time of warm rebuilds of the same project.
//! - Latest-pointer reads: `GET /v1/projects/{u}/{p}/latest` with 32 in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kiln_shared::domain::read_tree;
use serde_json::{json, Value};

use crate::farm::{Env, Farm};
use crate::stats::{self, median, percentile};
use crate::summary::{Outcome, Summary};

pub const ROLLBACKS: usize = 1_000;
pub const REBUILDS: usize = 3;
pub const READS: usize = 20_000;
pub const READ_WARMUP: usize = 1_000;
pub const READ_CONCURRENCY: usize = 32;
pub const MAX_ROLLBACK_P99_MS: f64 = 10.0;
pub const MIN_SPEEDUP: f64 = 300.0;
pub const MIN_READS_PER_S: f64 = 20_000.0;
pub const MAX_READ_P99_MS: f64 = 5.0;
const USER: &str = "bench-user";
const PROJECT: &str = "rollback";

#[derive(Debug, Clone)]
pub struct Report {
    pub rollback_ms: Vec<f64>,
    pub rebuild_ms: Vec<f64>,
    pub reads_per_s: f64,
    pub read_p50_ms: f64,
    pub read_p99_ms: f64,
}

impl Report {
    pub fn p50(&self) -> f64 {
        percentile(&self.rollback_ms, 50.0)
    }

    pub fn p99(&self) -> f64 {
        percentile(&self.rollback_ms, 99.0)
    }

    pub fn speedup(&self) -> f64 {
        median(&self.rebuild_ms) / self.p99()
    }

    pub fn rollback_pass(&self) -> bool {
        self.p99() <= MAX_ROLLBACK_P99_MS && self.speedup() >= MIN_SPEEDUP
    }

    pub fn reads_pass(&self) -> bool {
        self.reads_per_s >= MIN_READS_PER_S && self.read_p99_ms <= MAX_READ_P99_MS
    }
}

impl Summary for Report {
    fn print(&self) -> Outcome {
        let targets_met = self.rollback_pass() && self.reads_pass();
        println!(
    "rollback    p50 {:.2} ms  p99 {:.2} ms  warm rebuild median {:.2} s  {:.0}x faster  target p99 <= {} ms, >= {}x  {}",
    self.p50(),
    self.p99(),
    stats::median(&self.rebuild_ms) / 1000.0,
    self.speedup(),
    MAX_ROLLBACK_P99_MS,
    MIN_SPEEDUP,
    stats::verdict(self.rollback_pass())
);
        println!(
            "latest      {:.0} reads/s  p50 {:.2} ms  p99 {:.2} ms  target >= {}/s, p99 <= {} ms  {}",
            self.reads_per_s,
            self.read_p50_ms,
            self.read_p99_ms,
            MIN_READS_PER_S,
            MAX_READ_P99_MS,
            stats::verdict(self.reads_pass())
        );
        Outcome::met(targets_met)
    }
}

pub async fn run(env: &Env, example: &std::path::Path) -> anyhow::Result<Report> {
    let farm = Arc::new(Farm::start(env, 1).await?);
    let result = measure(&farm, example).await;
    if let Ok(farm) = Arc::try_unwrap(farm) {
        let dir = farm.stop().await;
        tokio::task::spawn_blocking(move || drop(dir)).await?;
    }
    let report = result?;
    println!(
        "-- rollback: {ROLLBACKS} rollbacks (request -> latest URL serving the target), {REBUILDS} warm rebuilds; {READS} latest reads, {READ_CONCURRENCY} in flight --"
    );
    println!(
        "rollback ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}; warm rebuild ms [{}]",
        report.p50(),
        percentile(&report.rollback_ms, 90.0),
        report.p99(),
        percentile(&report.rollback_ms, 100.0),
        stats::list(&report.rebuild_ms, 0)
    );
    Ok(report)
}

async fn measure(farm: &Arc<Farm>, example: &std::path::Path) -> anyhow::Result<Report> {
    let files = read_tree(example).with_context(|| format!("reading {}", example.display()))?;
    let first = farm
        .build(&json!({ "userId": USER, "projectId": PROJECT, "files": files }))
        .await
        .context("the cold build")?;
    eprintln!(
        "[bench] rollback: cold build {:.1} s",
        first.elapsed.as_secs_f64()
    );
    let app = files
        .iter()
        .find(|f| f.path == "src/App.tsx")
        .context("the example has src/App.tsx")?
        .content
        .clone();
    let mut rebuild_ms = Vec::new();
    let mut last = first.id.clone();
    for k in 0..REBUILDS {
        let edited = app.replace("Salon booking", &format!("Salon booking {k}"));
        let delta = json!({ "userId": USER, "projectId": PROJECT,
            "files": [{ "path": "src/App.tsx", "content": edited }] });
        let built = farm
            .build(&delta)
            .await
            .with_context(|| format!("warm rebuild {k}"))?;
        eprintln!(
            "[bench] rollback: warm rebuild {k} {:.2} s",
            built.elapsed.as_secs_f64()
        );
        rebuild_ms.push(stats::ms(built.elapsed));
        last = built.id;
    }
    let label = first.view["latestUrl"]
        .as_str()
        .and_then(|u| u.strip_prefix("http://"))
        .and_then(|u| u.split('.').next())
        .context("a build has a latestUrl")?
        .to_owned();
    let preview = format!(
        "http://127.0.0.1:{}/",
        farm.settings.preview.public_port.context("the preview port")?
    );
    let host = format!("{label}.localhost");
    let path = format!("/v1/projects/{USER}/{PROJECT}/rollback");
    let targets = [first.id.clone(), last];
    let mut rollback_ms = Vec::with_capacity(ROLLBACKS);
    for i in 0..ROLLBACKS {
        let body = json!({ "versionId": targets[i % 2] }).to_string();
        let t0 = Instant::now();
        let res = farm.signed_post(&path, body.into()).send().await?;
        let status = res.status();
        let answer: Value = res.json().await?;
        if status != 200 {
            bail!("rollback {i} answered {status}: {answer}");
        }
        let id = answer["version"]["id"]
            .as_str()
            .context("a rollback answer has a version")?;
        let page = farm.client.get(&preview).header("Host", &host).send().await?;
        let served = page
            .headers()
            .get("x-kiln-version")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let _ = page.bytes().await?;
        rollback_ms.push(stats::ms(t0.elapsed()));
        if served.as_deref() != Some(id) {
            bail!("after rollback {i} the latest URL served {served:?}, not {id}");
        }
    }
    eprintln!(
        "[bench] rollback: p50 {:.2} ms  p99 {:.2} ms",
        percentile(&rollback_ms, 50.0),
        percentile(&rollback_ms, 99.0)
    );

    let latest = format!("{}/v1/projects/{USER}/{PROJECT}/latest", farm.api);
    reads(farm, &latest, READ_WARMUP).await?;
    let (wall, latencies) = reads(farm, &latest, READS).await?;
    let reads_per_s = READS as f64 / wall.as_secs_f64();
    let read_p50_ms = percentile(&latencies, 50.0);
    let read_p99_ms = percentile(&latencies, 99.0);
    eprintln!("[bench] latest reads: {reads_per_s:.0}/s  p50 {read_p50_ms:.2} ms  p99 {read_p99_ms:.2} ms");
    Ok(Report {
        rollback_ms,
        rebuild_ms,
        reads_per_s,
        read_p50_ms,
        read_p99_ms,
    })
}

/// `count` GETs of `url` with a bearer token, `READ_CONCURRENCY` in flight; every answer must be 200.
async fn reads(farm: &Arc<Farm>, url: &str, count: usize) -> anyhow::Result<(Duration, Vec<f64>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..READ_CONCURRENCY {
        let (farm, next, url) = (farm.clone(), next.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let t0 = Instant::now();
                let res = farm
                    .client
                    .get(&url)
                    .bearer_auth(crate::farm::TOKEN)
                    .send()
                    .await?;
                let status = res.status();
                let _ = res.bytes().await?;
                if status != 200 {
                    bail!("GET latest answered {status}");
                }
                seen.push(stats::ms(t0.elapsed()));
            }
            Ok::<_, anyhow::Error>(seen)
        }));
    }
    let mut all = Vec::with_capacity(count);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((started.elapsed(), all))
}
