//! Part 5: build events.
//!
//! 1. Latency: event recorded by the builder (its Postgres timestamp) → parsed by an SSE client,
//!    with `CLIENTS` clients streaming the same build, over `BUILDS` builds. Only events recorded
//!    after every client had connected count (earlier ones reach a client as a replay).
//! 2. Cost: submit → `deployed` of the overhead part's trivial build on a farm with builder
//!    events on, and on one with them off (`KILN_BUILD_EVENTS=off`), interleaved.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::farm::{Env, Farm, TOKEN};
use crate::overhead;
use crate::stats::{self, median, percentile};
use crate::summary::{Outcome, Summary};

pub const CLIENTS: usize = 200;
pub const BUILDS: usize = 8;
pub const COST_RUNS: usize = 25;
pub const TARGET_P99_MS: f64 = 50.0;
pub const TARGET_COST: f64 = 0.02;

#[derive(Debug, Clone)]
pub struct Report {
    /// Every live (event, client) latency, ms.
    pub latencies: Vec<f64>,
    /// p99 of each build's latencies.
    pub build_p99: Vec<f64>,
    pub on_ms: Vec<f64>,
    pub off_ms: Vec<f64>,
}

impl Report {
    pub fn p50(&self) -> f64 {
        percentile(&self.latencies, 50.0)
    }

    pub fn p99(&self) -> f64 {
        percentile(&self.latencies, 99.0)
    }

    /// How much longer a build takes with events on: the median of the paired runs' relative
    /// differences (each pair ran back to back, so a slow phase of the machine falls on both).
    pub fn cost(&self) -> f64 {
        let pairs: Vec<f64> = self
            .on_ms
            .iter()
            .zip(&self.off_ms)
            .map(|(on, off)| on / off - 1.0)
            .collect();
        median(&pairs)
    }

    pub fn pass(&self) -> bool {
        self.p99() <= TARGET_P99_MS && self.cost() <= TARGET_COST
    }
}

/// A build that spends 1.5 s in its build step, so that the clients are connected well before
/// its later events.
fn slow_body(project: &str) -> Value {
    let package = json!({
        "name": "kiln-bench-events",
        "private": true,
        "scripts": { "build": "node -e \"setTimeout(()=>{require('fs').mkdirSync('dist');require('fs').writeFileSync('dist/index.html','e')},1500)\"" },
    });
    json!({
        "userId": "bench-user",
        "projectId": project,
        "files": [{ "path": "package.json", "content": package.to_string() }],
    })
}

impl Summary for Report {
    fn print(&self) -> Outcome {
        let targets_met = self.pass();
        println!(
    "events      {} SSE clients  p50 {:.2} ms  p99 {:.2} ms  target p99 <= {} ms  {}  | build cost of events {:+.1}%  target <= {:.0}%  {}",
    CLIENTS,
    self.p50(),
    self.p99(),
    TARGET_P99_MS,
    stats::verdict(self.p99() <= TARGET_P99_MS),
    self.cost() * 100.0,
    TARGET_COST * 100.0,
    stats::verdict(self.cost() <= TARGET_COST)
);
        Outcome::met(targets_met)
    }
}

pub async fn run(env: &Env) -> anyhow::Result<Report> {
    let farm = Farm::start(env, 1).await?;
    let latency = latencies(&farm).await;
    let folder = farm.stop().await;
    tokio::task::spawn_blocking(move || drop(folder)).await?;
    let (latencies, build_p99) = latency?;

    let on = Farm::start(env, 1).await?;
    let off = Farm::start_with(env, 1, &[("KILN_BUILD_EVENTS", "off")]).await?;
    let cost = costs(&on, &off).await;
    for farm in [on, off] {
        let folder = farm.stop().await;
        tokio::task::spawn_blocking(move || drop(folder)).await?;
    }
    let (on_ms, off_ms) = cost?;
    let report = Report {
        latencies,
        build_p99,
        on_ms,
        off_ms,
    };
    print_details(&report);
    Ok(report)
}

async fn latencies(farm: &Farm) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS * 2)
        .tcp_nodelay(true)
        .build()?;
    // An uncounted build first: process start, caches.
    farm.build(&overhead::body("e-warmup"))
        .await
        .context("the warm-up build")?;
    let mut all = Vec::new();
    let mut per_build = Vec::new();
    for round in 0..BUILDS {
        let body = Bytes::from(slow_body(&format!("e{round}")).to_string());
        let res = farm.post_build(&client, body).send().await?;
        let answer: Value = res.json().await?;
        let id = answer["buildId"]
            .as_str()
            .with_context(|| format!("no buildId in {answer}"))?
            .to_owned();
        let connected = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            let url = format!("{}/v1/builds/{id}/events/stream", farm.api);
            tasks.push(tokio::spawn(stream(client.clone(), url, connected.clone())));
        }
        // The moment every client is connected: later events reach all of them live.
        let started = std::time::Instant::now();
        while connected.load(Ordering::SeqCst) < CLIENTS {
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "only {} of {CLIENTS} SSE clients connected",
                    connected.load(Ordering::SeqCst)
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let all_connected = Utc::now();
        let mut samples = Vec::new();
        for t in tasks {
            for (recorded, received) in t.await?? {
                if recorded > all_connected {
                    samples
                        .push((received - recorded).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
                }
            }
        }
        if samples.is_empty() {
            bail!("build {id}: no event was recorded after the clients connected");
        }
        eprintln!(
            "[bench] events run {:>2}/{BUILDS}  {} live deliveries  p50 {:>5.2} ms  p99 {:>6.2} ms  max {:>6.2} ms",
            round + 1,
            samples.len(),
            percentile(&samples, 50.0),
            percentile(&samples, 99.0),
            samples.iter().copied().fold(0.0, f64::max),
        );
        per_build.push(percentile(&samples, 99.0));
        all.extend(samples);
    }
    Ok((all, per_build))
}

/// One SSE client: reads the stream to its end; returns each event's recorded and received
/// times.
async fn stream(
    client: reqwest::Client,
    url: String,
    connected: Arc<AtomicUsize>,
) -> anyhow::Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    let mut res = client.get(&url).bearer_auth(TOKEN).send().await?;
    if res.status() != 200 {
        bail!("GET {url}: {}", res.status());
    }
    connected.fetch_add(1, Ordering::SeqCst);
    let mut buf = String::new();
    let mut out = Vec::new();
    while let Some(chunk) = res.chunk().await? {
        let received = Utc::now();
        buf.push_str(std::str::from_utf8(&chunk)?);
        while let Some(end) = buf.find("\n\n") {
            let message: String = buf.drain(..end + 2).collect();
            let Some(data) = message.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let event: Value = serde_json::from_str(data)?;
            let recorded = event["timestamp"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .with_context(|| format!("no timestamp in {data}"))?;
            out.push((recorded.with_timezone(&Utc), received));
        }
    }
    Ok(out)
}

async fn costs(on: &Farm, off: &Farm) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    on.build(&overhead::body("c-warmup"))
        .await
        .context("warm-up, events on")?;
    off.build(&overhead::body("c-warmup"))
        .await
        .context("warm-up, events off")?;
    let (mut on_ms, mut off_ms) = (Vec::new(), Vec::new());
    for i in 0..COST_RUNS {
        // Alternating which side goes first, so that neither always follows the other.
        let (first, second) = if i % 2 == 0 { (on, off) } else { (off, on) };
        let a = first.build(&overhead::body(&format!("c{i}"))).await?;
        let b = second.build(&overhead::body(&format!("c{i}"))).await?;
        let (on_run, off_run) = if i % 2 == 0 { (a, b) } else { (b, a) };
        eprintln!(
            "[bench] events cost run {:>2}/{COST_RUNS}  on {:>5.0} ms  off {:>5.0} ms",
            i + 1,
            stats::ms(on_run.elapsed),
            stats::ms(off_run.elapsed)
        );
        on_ms.push(stats::ms(on_run.elapsed));
        off_ms.push(stats::ms(off_run.elapsed));
    }
    Ok((on_ms, off_ms))
}

fn print_details(r: &Report) {
    println!(
        "-- events: {CLIENTS} SSE clients on one build, {BUILDS} builds; cost: {COST_RUNS} trivial builds a side, interleaved --"
    );
    println!(
        "latency  recorded -> received  {} live deliveries  p50 {:.2} ms  p99 {:.2} ms  per-build p99 [{}]",
        r.latencies.len(),
        r.p50(),
        r.p99(),
        stats::list(&r.build_p99, 1)
    );
    println!(
        "cost     submit -> deployed  events on median {:.0} ms [{}]  off median {:.0} ms [{}]  median of paired differences {:+.1}%",
        median(&r.on_ms),
        stats::list(&r.on_ms, 0),
        median(&r.off_ms),
        stats::list(&r.off_ms, 0),
        r.cost() * 100.0
    );
}
