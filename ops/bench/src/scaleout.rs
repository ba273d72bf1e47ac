//! Part 7: scale-out: no-op builds per second with 1, 2 and 4 daemons (processes of their own
//! on this machine), and whether the queue or the CPUs limit them.
//!
//! For each daemon count, a fresh farm and fresh daemons; after a warm-up build per daemon,
//! [`BUILDS`] no-op builds ([`crate::dispatch::noop_body`]) are submitted at once and the run
//! lasts until every one is deployed. The figures come from the builds' rows (Postgres's
//! clock): rate = builds ÷ (last `finished_at` − first `created_at`); a daemon is busy from a
//! build's `started_at` to its `finished_at`, and between two builds it is in the queue's hands
//! (recording done → ack → read → the next build marked running: the hand-off). While builds
//! wait in the stream, a daemon's time outside builds is time the queue costs it; so the queue
//! is the bottleneck only if the daemons spend a noticeable share of the run between builds.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use secrecy::ExposeSecret;
use sqlx::Row;

use crate::cpu::{self, MachineTimes};
use crate::daemons::{self, Daemon, Launcher};
use crate::dispatch::noop_body;
use crate::farm::{Env, Farm};
use crate::starts::Shim;
use crate::stats::{self, median, percentile};
use crate::summary::{Outcome, Summary};

pub const COUNTS: [usize; 3] = [1, 2, 4];
pub const BUILDS: usize = 40;
pub const ROUNDS: usize = 3;
/// Target: at every daemon count the daemons are busy building at least this share of the
/// run (the queue's hand-offs take the rest).
pub const MIN_BUSY: f64 = 0.9;
/// The machine counts as CPU-bound from this busy share of all cores.
pub const CPU_BOUND: f64 = 0.9;
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// One run with one daemon count.
#[derive(Debug, Clone)]
pub struct Run {
    pub builds_per_s: f64,
    /// Share of the machine's CPU time (all cores) that was busy during the run.
    pub cpu_busy: f64,
    /// Share of the daemons' time spent inside builds (`started_at` → `finished_at`).
    pub daemon_busy: f64,
    /// Hand-offs on one daemon: a build recorded → its next build marked running (ms).
    pub handoff_ms: Vec<f64>,
    /// Median of the builds waiting in the stream (entries beyond the running ones), sampled
    /// every 100 ms while any build was not yet deployed.
    pub waiting_median: f64,
    /// CPU seconds during the run: build processes (pnpm), daemons, API + benchmark client,
    /// Redis, the rest (Postgres, anything else on the machine).
    pub cpu_secs: CpuSplit,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSplit {
    pub builds: f64,
    pub daemons: f64,
    pub api: f64,
    pub redis: f64,
    pub rest: f64,
}

#[derive(Debug, Clone)]
pub struct Report {
    /// `runs[i]`: the runs of `COUNTS[i]` daemons.
    pub runs: Vec<Vec<Run>>,
}

/// The medians of one daemon count's runs.
#[derive(Debug, Clone)]
pub struct Figure {
    pub daemons: usize,
    pub builds_per_s: f64,
    pub cpu_busy: f64,
    pub daemon_busy: f64,
    pub handoff_p50: f64,
    pub handoff_p99: f64,
    pub waiting: f64,
}

impl Report {
    pub fn figures(&self) -> Vec<Figure> {
        self.runs
            .iter()
            .zip(COUNTS)
            .map(|(runs, daemons)| {
                let m = |f: fn(&Run) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
                Figure {
                    daemons,
                    builds_per_s: m(|r| r.builds_per_s),
                    cpu_busy: m(|r| r.cpu_busy),
                    daemon_busy: m(|r| r.daemon_busy),
                    handoff_p50: m(|r| percentile(&r.handoff_ms, 50.0)),
                    handoff_p99: m(|r| percentile(&r.handoff_ms, 99.0)),
                    waiting: m(|r| r.waiting_median),
                }
            })
            .collect()
    }

    /// The queue kept every daemon busy at every count.
    pub fn pass(&self) -> bool {
        self.figures().iter().all(|f| f.daemon_busy >= MIN_BUSY)
    }

    /// The fewest daemons with which the CPUs were the limit.
    pub fn cpu_bound_from(&self) -> Option<usize> {
        self.figures()
            .iter()
            .find(|f| f.cpu_busy >= CPU_BOUND)
            .map(|f| f.daemons)
    }
}

impl Summary for Report {
    fn print(&self) -> Outcome {
        let targets_met = self.pass();
        let figures = self.figures();
        let rates: Vec<String> = figures
            .iter()
            .map(|f| format!("{}: {:.2}/s", f.daemons, f.builds_per_s))
            .collect();
        let busy: Vec<String> = figures
            .iter()
            .map(|f| format!("{:.0}%", f.daemon_busy * 100.0))
            .collect();
        let cpu: Vec<String> = figures
            .iter()
            .map(|f| format!("{:.0}%", f.cpu_busy * 100.0))
            .collect();
        println!(
    "scaleout    no-op builds/s by daemons  {}  | daemons busy {}  cpu busy {}  cpu-bound from {} daemon(s)  | target daemons busy >= {:.0}% (the queue is not the bottleneck)  {}",
    rates.join("  "),
    busy.join("/"),
    cpu.join("/"),
    self.cpu_bound_from().map_or_else(|| "none of".to_owned(), |n| n.to_string()),
    MIN_BUSY * 100.0,
    stats::verdict(self.pass())
);
        Outcome::met(targets_met)
    }
}

pub async fn run(env: &Env) -> anyhow::Result<Report> {
    let mut runs: Vec<Vec<Run>> = COUNTS.iter().map(|_| Vec::new()).collect();
    for round in 1..=ROUNDS {
        // 1, 2, 4 then 4, 2, 1: no count always runs on the freshest machine.
        let mut order: Vec<usize> = (0..COUNTS.len()).collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for i in order {
            let n = COUNTS[i];
            let r = one_run(env, round, n)
                .await
                .with_context(|| format!("scale-out with {n} daemons, run {round}"))?;
            eprintln!(
                "[bench] scaleout run {round}/{ROUNDS}  {n} daemons  {:>5.2} builds/s  cpu {:>3.0}%  daemons busy {:>3.0}%  hand-off p50 {:>5.1} ms p99 {:>6.1} ms  waiting (median) {:.0}  cpu s: builds {:.1} daemons {:.1} api {:.1} redis {:.2} rest {:.1}",
                r.builds_per_s,
                r.cpu_busy * 100.0,
                r.daemon_busy * 100.0,
                percentile(&r.handoff_ms, 50.0),
                percentile(&r.handoff_ms, 99.0),
                r.waiting_median,
                r.cpu_secs.builds,
                r.cpu_secs.daemons,
                r.cpu_secs.api,
                r.cpu_secs.redis,
                r.cpu_secs.rest,
            );
            runs[i].push(r);
        }
    }
    let report = Report { runs };
    print_details(&report);
    Ok(report)
}

fn print_details(r: &Report) {
    println!(
        "-- scaleout: {BUILDS} no-op builds submitted at once, 1/2/4 daemons (processes, concurrency 1), {ROUNDS} runs each (median of runs) --"
    );
    let one = r.figures().first().map_or(f64::NAN, |f| f.builds_per_s);
    for (f, runs) in r.figures().iter().zip(&r.runs) {
        let split =
            |g: fn(&CpuSplit) -> f64| median(&runs.iter().map(|x| g(&x.cpu_secs)).collect::<Vec<_>>());
        println!(
            "{} daemon(s)  {:>5.2} builds/s ({:.2}x)  runs [{}]  cpu busy {:>3.0}%  daemons busy {:>3.0}%  hand-off p50 {:.1} ms p99 {:.1} ms  waiting builds (median) {:.0}",
            f.daemons,
            f.builds_per_s,
            f.builds_per_s / one,
            stats::list(&runs.iter().map(|x| x.builds_per_s).collect::<Vec<_>>(), 2),
            f.cpu_busy * 100.0,
            f.daemon_busy * 100.0,
            f.handoff_p50,
            f.handoff_p99,
            f.waiting,
        );
        println!(
            "             cpu seconds: build processes {:.1} ({:.2} a build), daemons {:.1}, API + client {:.1}, Redis {:.2}, rest (Postgres, other programs) {:.1}",
            split(|c| c.builds),
            split(|c| c.builds) / BUILDS as f64,
            split(|c| c.daemons),
            split(|c| c.api),
            split(|c| c.redis),
            split(|c| c.rest),
        );
    }
}

async fn one_run(env: &Env, round: usize, n: usize) -> anyhow::Result<Run> {
    let farm = Farm::start(env, 0).await?;
    let result = async {
        let shim = Shim::new()?;
        let launcher = Launcher::new(&farm, &shim, &[])?;
        let ids: Vec<String> = (1..=n).map(|k| format!("scale-{round}-{n}-{k}")).collect();
        let fleet = daemons::start_all(&farm, &launcher, &ids).await?;
        let measured = measure(env, &farm, &fleet, round).await;
        daemons::stop_all(fleet).await;
        measured
    }
    .await;
    let folder = farm.stop().await;
    tokio::task::spawn_blocking(move || drop(folder)).await?;
    result
}

/// CPU counters at one moment.
struct Snapshot {
    machine: MachineTimes,
    builds: f64,
    daemons: f64,
    api: f64,
    redis: f64,
}

async fn snapshot(env: &Env, fleet: &[Daemon]) -> anyhow::Result<Snapshot> {
    let (mut daemons, mut builds) = (0.0, 0.0);
    for d in fleet {
        let (own, children) = d.cpu_secs().context("reading a daemon's CPU time")?;
        daemons += own;
        builds += children;
    }
    Ok(Snapshot {
        machine: MachineTimes::now().context("reading /proc/stat")?,
        builds,
        daemons,
        api: cpu::process_secs(std::process::id()).map_or(0.0, |(own, _)| own),
        redis: cpu::redis_secs(&env.redis_url).await?,
    })
}

async fn measure(env: &Env, farm: &Farm, fleet: &[Daemon], round: usize) -> anyhow::Result<Run> {
    let n = fleet.len();
    let db = sqlx::PgPool::connect(farm.settings.database.url.expose_secret()).await?;
    let result = async {
        // Warm-up: one build per daemon, at once (process start-up, page cache).
        let warm: Vec<String> = (0..n).map(|k| format!("sw{round}-{n}-{k}")).collect();
        let mut ids = Vec::new();
        for p in &warm {
            ids.push(farm.submit(Bytes::from(noop_body(p).to_string())).await?);
        }
        wait_all(farm, &db, &ids, n, None).await?;

        let before = snapshot(env, fleet).await?;
        let mut ids = Vec::with_capacity(BUILDS);
        for k in 0..BUILDS {
            let body = Bytes::from(noop_body(&format!("s{round}-{n}-{k}")).to_string());
            ids.push(farm.submit(body).await?);
        }
        let mut waiting = Vec::new();
        wait_all(farm, &db, &ids, n, Some(&mut waiting)).await?;
        let after = snapshot(env, fleet).await?;
        let rows = sqlx::query(
            "select builder_id, created_at, started_at, finished_at from versions where id = any($1)",
        )
        .bind(&ids)
        .fetch_all(&db)
        .await?;
        let ms = |t: chrono::DateTime<chrono::Utc>| t.timestamp_micros() as f64 / 1000.0;
        let mut builds = Vec::with_capacity(rows.len());
        for row in rows {
            let builder: String = row.try_get("builder_id")?;
            let created: chrono::DateTime<chrono::Utc> = row.try_get("created_at")?;
            let started: chrono::DateTime<chrono::Utc> = row.try_get("started_at")?;
            let finished: chrono::DateTime<chrono::Utc> = row.try_get("finished_at")?;
            builds.push((builder, ms(created), ms(started), ms(finished)));
        }
        let first = builds.iter().map(|b| b.1).fold(f64::INFINITY, f64::min);
        let last = builds.iter().map(|b| b.3).fold(f64::NEG_INFINITY, f64::max);
        let window_ms = last - first;
        let inside: f64 = builds.iter().map(|b| b.3 - b.2).sum();
        let mut handoff_ms = Vec::new();
        for d in fleet {
            let mut mine: Vec<_> = builds.iter().filter(|b| b.0 == d.id).collect();
            mine.sort_by(|a, b| a.2.total_cmp(&b.2));
            handoff_ms.extend(mine.windows(2).map(|w| w[1].2 - w[0].3));
        }
        let machine_busy = before.machine.busy_secs(&after.machine);
        let split = CpuSplit {
            builds: after.builds - before.builds,
            daemons: after.daemons - before.daemons,
            api: after.api - before.api,
            redis: after.redis - before.redis,
            rest: 0.0,
        };
        let rest = machine_busy - split.builds - split.daemons - split.api - split.redis;
        Ok(Run {
            builds_per_s: BUILDS as f64 / (window_ms / 1000.0),
            cpu_busy: before.machine.busy_share(&after.machine),
            daemon_busy: inside / (n as f64 * window_ms),
            handoff_ms,
            waiting_median: median(&waiting),
            cpu_secs: CpuSplit { rest, ..split },
        })
    }
    .await;
    db.close().await;
    result
}

/// Waits until every build of `ids` is deployed (any other end is an error), sampling every
/// 100 ms how many wait in the stream beyond the `n` running ones into `waiting`.
async fn wait_all(
    farm: &Farm,
    db: &sqlx::PgPool,
    ids: &[String],
    n: usize,
    mut waiting: Option<&mut Vec<f64>>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let depth = farm.queue_depth().await?;
        let rows =
            sqlx::query("select status, count(*) as n from versions where id = any($1) group by status")
                .bind(ids)
                .fetch_all(db)
                .await?;
        let mut deployed = 0i64;
        for row in &rows {
            let status: String = row.try_get("status")?;
            let count: i64 = row.try_get("n")?;
            match status.as_str() {
                "deployed" => deployed = count,
                "queued" | "running" => {}
                other => bail!("{count} build(s) ended {other}"),
            }
        }
        if deployed as usize == ids.len() {
            return Ok(());
        }
        if let Some(w) = waiting.as_deref_mut() {
            w.push(depth.saturating_sub(n as u64) as f64);
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("{deployed} of {} builds deployed after 300 s", ids.len());
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}
