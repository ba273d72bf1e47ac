//! Part 1: admission throughput and latency of `POST /v1/builds` with no builder running, beside
//! BullMQ's `queue.add` with deduplication on the same Redis.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use crate::farm::{Env, Farm};
use crate::stats::{self, median, percentile};
use crate::summary::{Outcome, Summary};

pub const REQUESTS: usize = 5_000;
pub const WARMUP: usize = 200;
pub const CONCURRENCY: usize = 32;
pub const ROUNDS: usize = 3;
const USER: &str = "bench-user";

/// Targets.
pub const MIN_RATIO: f64 = 0.5;
pub const MAX_P99_MS: f64 = 25.0;

/// One measured run of one side.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
    #[serde(default)]
    pub error_samples: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Side {
    pub runs: Vec<Run>,
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
}

impl Side {
    fn of(runs: Vec<Run>) -> Self {
        let pick = |f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        Self {
            rate: pick(|r| r.rate),
            p50_ms: pick(|r| r.p50_ms),
            p99_ms: pick(|r| r.p99_ms),
            errors: runs.iter().map(|r| r.errors).sum(),
            runs,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub kiln: Side,
    pub bullmq: Side,
    pub bullmq_version: String,
}

impl Report {
    pub fn ratio(&self) -> f64 {
        self.kiln.rate / self.bullmq.rate
    }

    pub fn pass(&self) -> bool {
        self.kiln.errors == 0 && self.ratio() >= MIN_RATIO && self.kiln.p99_ms <= MAX_P99_MS
    }
}

/// The body for one project: a static site of one index.html, the same for every run.
pub fn site_body(project: &str) -> serde_json::Value {
    json!({
        "userId": USER,
        "projectId": project,
        "files": [{
            "path": "index.html",
            "content": format!("<!doctype html>\n<title>{project}</title>\n<h1>Kiln bench {project}</h1>\n"),
        }],
    })
}

impl Summary for Report {
    fn print(&self) -> Outcome {
        let pass = self.pass();
        let targets_met = pass;
        let measured = self.kiln.errors == 0;
        println!(
    "admission   kiln {:>6.0} req/s  p50 {:.1} ms  p99 {:.1} ms  | bullmq {:>6.0} adds/s p50 {:.1} ms  p99 {:.1} ms  | ratio {:.2}  target >= {}, p99 <= {} ms  {}{}",
    self.kiln.rate,
    self.kiln.p50_ms,
    self.kiln.p99_ms,
    self.bullmq.rate,
    self.bullmq.p50_ms,
    self.bullmq.p99_ms,
    self.ratio(),
    MIN_RATIO,
    MAX_P99_MS,
    stats::verdict(pass),
    if self.kiln.errors > 0 {
        format!("  ({} NON-202 ANSWERS)", self.kiln.errors)
    } else {
        String::new()
    }
);
        Outcome {
            targets_met,
            measured,
        }
    }
}

pub async fn run(env: &Env, bench_dir: &Path) -> anyhow::Result<Report> {
    let script = bench_dir.join("bullmq-admission.mjs");
    let mut kiln = Vec::new();
    let mut bullmq = Vec::new();
    let mut bullmq_version = String::new();
    // The farms' folders (10,400 files each) are removed only after the last run, so that no run
    // follows a mass deletion: creating files (ext4 inode allocation) is where admission spends
    // most of its time on this machine, and recently freed inodes make it slower.
    let mut folders = Vec::new();
    // Interleaved, so that a slow phase of the machine falls on both sides.
    for round in 1..=ROUNDS {
        let (k, folder) = kiln_run(env)
            .await
            .with_context(|| format!("kiln admission, run {round}"))?;
        folders.push(folder);
        eprintln!(
            "[bench] admission run {round}/{ROUNDS}  kiln   {:>6.0} req/s  p50 {:>5.2} ms  p99 {:>6.2} ms  non-202: {}",
            k.rate, k.p50_ms, k.p99_ms, k.errors
        );
        for s in &k.error_samples {
            eprintln!("[bench]     {s}");
        }
        kiln.push(k);
        let (b, version) = bullmq_run(env, &script, round)
            .await
            .with_context(|| format!("bullmq admission, run {round}"))?;
        eprintln!(
            "[bench] admission run {round}/{ROUNDS}  bullmq {:>6.0} adds/s p50 {:>5.2} ms  p99 {:>6.2} ms  errors: {}",
            b.rate, b.p50_ms, b.p99_ms, b.errors
        );
        for s in &b.error_samples {
            eprintln!("[bench]     {s}");
        }
        bullmq.push(b);
        bullmq_version = version;
    }
    tokio::task::spawn_blocking(move || drop(folders)).await?;
    let report = Report {
        kiln: Side::of(kiln),
        bullmq: Side::of(bullmq),
        bullmq_version,
    };
    print_details(&report);
    Ok(report)
}

fn print_details(r: &Report) {
    let rates = |s: &Side| stats::list(&s.runs.iter().map(|x| x.rate).collect::<Vec<_>>(), 0);
    let p99s = |s: &Side| stats::list(&s.runs.iter().map(|x| x.p99_ms).collect::<Vec<_>>(), 2);
    println!("-- admission: {REQUESTS} requests after {WARMUP} warm-up, {CONCURRENCY} in flight, {ROUNDS} runs a side (median of runs) --");
    println!(
        "kiln    POST /v1/builds           runs req/s [{}]  p99 ms [{}]  non-202: {}",
        rates(&r.kiln),
        p99s(&r.kiln),
        r.kiln.errors
    );
    println!(
        "bullmq  {} queue.add(dedup)  runs adds/s [{}]  p99 ms [{}]  errors: {}",
        r.bullmq_version,
        rates(&r.bullmq),
        p99s(&r.bullmq),
        r.bullmq.errors
    );
}

/// Sends one signed POST per body with `CONCURRENCY` in flight; returns the wall time and, per
/// request, its status and latency.
async fn blast(farm: &Arc<Farm>, bodies: Vec<Bytes>) -> (Duration, Vec<(u16, Duration)>, Vec<String>) {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(CONCURRENCY);
    for _ in 0..CONCURRENCY {
        let (farm, bodies, next) = (farm.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let t0 = Instant::now();
                let res = farm.post_build(&farm.client, body.clone()).send().await;
                let (status, text) = match res {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        match res.bytes().await {
                            Ok(b) => (status, b),
                            Err(e) => (0, Bytes::from(e.to_string())),
                        }
                    }
                    Err(e) => (0, Bytes::from(e.to_string())),
                };
                seen.push((status, t0.elapsed()));
                if status != 202 && samples.len() < 3 {
                    samples.push(format!("{status}: {}", String::from_utf8_lossy(&text)));
                }
            }
            (seen, samples)
        }));
    }
    let mut all = Vec::with_capacity(bodies.len());
    let mut samples = Vec::new();
    for t in tasks {
        let (seen, s) = t.await.expect("a sender task does not panic");
        all.extend(seen);
        samples.extend(s);
    }
    samples.truncate(5);
    (started.elapsed(), all, samples)
}

fn bodies(prefix: &str, n: usize) -> Vec<Bytes> {
    (0..n)
        .map(|i| Bytes::from(site_body(&format!("{prefix}{i}")).to_string()))
        .collect()
}

/// One Kiln run on a fresh farm (fresh database and Redis prefix, so every run admits the same
/// projects p0..p4999 into the same empty state).
async fn kiln_run(env: &Env) -> anyhow::Result<(Run, tempfile::TempDir)> {
    let farm = Arc::new(Farm::start(env, 0).await?);
    let (_, warm, warm_samples) = blast(&farm, bodies("w", WARMUP)).await;
    let warm_bad = warm.iter().filter(|(s, _)| *s != 202).count();
    if warm_bad > 0 {
        bail!("{warm_bad} of the {WARMUP} warm-up requests were not answered 202: {warm_samples:?}");
    }
    if std::env::var("KILN_BENCH_ANALYZE").as_deref() != Ok("0") {
        farm.analyze().await.context("ANALYZE after the warm-up")?;
    }
    let (wall, seen, error_samples) = blast(&farm, bodies("p", REQUESTS)).await;
    let lat: Vec<f64> = seen.iter().map(|(_, d)| stats::ms(*d)).collect();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    for (s, _) in &seen {
        *by_status.entry(*s).or_default() += 1;
    }
    let errors = seen.len() - by_status.get(&202).copied().unwrap_or(0);
    let mut samples = error_samples;
    if errors > 0 {
        samples.insert(0, format!("answers by status (0 = no answer): {by_status:?}"));
    }
    let farm = Arc::into_inner(farm).context("the sender tasks have ended")?;
    let depth = farm.queue_depth().await?;
    let folder = farm.stop().await;
    let queued = WARMUP + REQUESTS - errors;
    if depth != queued as u64 {
        bail!("the build stream holds {depth} entries after {queued} answers 202");
    }
    let run = Run {
        rate: seen.len() as f64 / wall.as_secs_f64(),
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
        errors,
        error_samples: samples,
    };
    Ok((run, folder))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BullOutput {
    #[serde(flatten)]
    run: Run,
    bullmq_version: String,
    jobs_in_queue: usize,
}

/// One BullMQ run: the Node script on a queue of its own in the same Redis.
async fn bullmq_run(env: &Env, script: &Path, round: usize) -> anyhow::Result<(Run, String)> {
    let queue = format!(
        "bench-{}-{round}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    let out = tokio::process::Command::new("node")
        .arg(script)
        .args(["--redis", &env.redis_url, "--queue", &queue])
        .args([
            "--requests",
            &REQUESTS.to_string(),
            "--warmup",
            &WARMUP.to_string(),
        ])
        .args(["--concurrency", &CONCURRENCY.to_string()])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), out)
        .await
        .context("the BullMQ script ran for more than 300 s")?
        .context("starting node")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{} failed ({}):\n{stdout}{}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = stdout
        .lines()
        .last()
        .context("the BullMQ script printed nothing")?;
    let parsed: BullOutput =
        serde_json::from_str(line).with_context(|| format!("the BullMQ script printed {line:?}"))?;
    if parsed.jobs_in_queue != REQUESTS + WARMUP {
        bail!(
            "BullMQ holds {} jobs after {} distinct adds: deduplication did not behave as expected",
            parsed.jobs_in_queue,
            REQUESTS + WARMUP
        );
    }
    Ok((parsed.run, parsed.bullmq_version))
}
