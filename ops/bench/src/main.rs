//! kiln-bench: Kiln's benchmark. Run it through `ops/bench/run.sh`, which starts the private
//! PostgreSQL and Redis it needs; see ops/bench/README.md for what each figure means.
//!
//!     kiln-bench [admission] [overhead] [warm] [rollback] [events] [dispatch] [scaleout] [reclaim] [ratelimit] [maintain]
//!     (no argument: all)
//!
//! Per-run figures go to stderr as they come; the details of each part and the summary block go
//! to stdout. Exit status: 0 when every figure was measured (whatever the targets say), 1 when a
//! part could not be measured (an answer that was not 202, a failed build, a missing service),
//! 2 for a bad argument. With KILN_BENCH_STRICT=1 a missed target also exits 3.
#![allow(clippy::print_stdout)]

mod admission;
mod cpu;
mod daemons;
mod dispatch;
mod events;
mod farm;
mod maintain;
mod overhead;
mod ratelimit;
mod reclaim;
mod rollback;
mod scaleout;
mod starts;
mod stats;
mod warm;

use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Admission,
    Overhead,
    Warm,
    Rollback,
    Events,
    Dispatch,
    Scaleout,
    Reclaim,
    Ratelimit,
    Maintain,
    Storage,
}

const PART_NAMES: &str =
    "admission, overhead, warm, rollback, events, dispatch, scaleout, reclaim, ratelimit, maintain, storage or all";

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Admission => "admission",
            Part::Overhead => "overhead",
            Part::Warm => "warm",
            Part::Rollback => "rollback",
            Part::Events => "events",
            Part::Dispatch => "dispatch",
            Part::Scaleout => "scaleout",
            Part::Reclaim => "reclaim",
            Part::Ratelimit => "ratelimit",
            Part::Maintain => "maintain",
            Part::Storage => "storage",
        }
    }
}

fn parse_parts(args: &[String]) -> Result<Vec<Part>, String> {
    if args.is_empty() || args.iter().any(|a| a == "all") {
        return Ok(vec![
            Part::Admission,
            Part::Overhead,
            Part::Warm,
            Part::Rollback,
            Part::Events,
            Part::Dispatch,
            Part::Scaleout,
            Part::Reclaim,
            Part::Ratelimit,
            Part::Maintain,
        ]);
    }
    let mut parts = Vec::new();
    for a in args {
        let p = match a.as_str() {
            "admission" => Part::Admission,
            "overhead" => Part::Overhead,
            "warm" => Part::Warm,
            "rollback" => Part::Rollback,
            "events" => Part::Events,
            "dispatch" => Part::Dispatch,
            "scaleout" => Part::Scaleout,
            "reclaim" => Part::Reclaim,
            "ratelimit" => Part::Ratelimit,
            "maintain" => Part::Maintain,
            // The storage figure alone (`maintain` measures it too).
            "storage" => Part::Storage,
            other => return Err(format!("unknown part {other:?}: expected {PART_NAMES}")),
        };
        if !parts.contains(&p) {
            parts.push(p);
        }
    }
    parts.sort_by_key(|p| *p as u8);
    Ok(parts)
}

#[derive(Default)]
struct Results {
    admission: Option<Result<admission::Report, String>>,
    overhead: Option<Result<overhead::Report, String>>,
    warm: Option<Result<warm::Report, String>>,
    rollback: Option<Result<rollback::Report, String>>,
    events: Option<Result<events::Report, String>>,
    dispatch: Option<Result<dispatch::Report, String>>,
    scaleout: Option<Result<scaleout::Report, String>>,
    reclaim: Option<Result<reclaim::Report, String>>,
    ratelimit: Option<Result<ratelimit::Report, String>>,
    maintain: Option<Result<maintain::Report, String>>,
    storage: Option<Result<maintain::Storage, String>>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parts = match parse_parts(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kiln-bench: {e}");
            std::process::exit(2);
        }
    };
    kiln_shared::telemetry::init("warn");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 * 1024 * 1024)
        .build()
        .expect("a tokio runtime");
    let code = runtime.block_on(async {
        tokio::select! {
            code = run(parts) => code,
            code = interrupted() => code,
        }
    });
    // The API's workers and pools go with the process.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    std::process::exit(code);
}

async fn run(parts: Vec<Part>) -> i32 {
    let env = match farm::Env::from_env() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("kiln-bench: {e:#}");
            return 1;
        }
    };
    let bench_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let example = bench_dir.join("../../examples/vite-react");
    let mut results = Results::default();
    for part in parts {
        let started = Instant::now();
        eprintln!("[bench] == {} ==", part.name());
        match part {
            Part::Admission => {
                results.admission = Some(
                    admission::run(&env, &bench_dir)
                        .await
                        .map_err(|e| format!("{e:#}")),
                );
            }
            Part::Overhead => {
                results.overhead = Some(overhead::run(&env).await.map_err(|e| format!("{e:#}")));
            }
            Part::Rollback => {
                results.rollback = Some(rollback::run(&env, &example).await.map_err(|e| format!("{e:#}")));
            }
            Part::Events => {
                results.events = Some(events::run(&env).await.map_err(|e| format!("{e:#}")));
            }
            Part::Warm => {
                results.warm = Some(warm::run(&env, &example).await.map_err(|e| format!("{e:#}")));
            }
            Part::Dispatch => {
                results.dispatch = Some(
                    dispatch::run(&env, &bench_dir)
                        .await
                        .map_err(|e| format!("{e:#}")),
                );
            }
            Part::Scaleout => {
                results.scaleout = Some(scaleout::run(&env).await.map_err(|e| format!("{e:#}")));
            }
            Part::Reclaim => {
                results.reclaim = Some(reclaim::run(&env).await.map_err(|e| format!("{e:#}")));
            }
            Part::Ratelimit => {
                results.ratelimit = Some(ratelimit::run(&env).await.map_err(|e| format!("{e:#}")));
            }
            Part::Maintain => {
                results.maintain = Some(maintain::run(&env, &example).await.map_err(|e| format!("{e:#}")));
            }
            Part::Storage => {
                results.storage = Some(
                    maintain::storage_only(&env, &example)
                        .await
                        .map_err(|e| format!("{e:#}")),
                );
            }
        }
        eprintln!(
            "[bench] {} took {:.1} s",
            part.name(),
            started.elapsed().as_secs_f64()
        );
    }
    summary(&results, &example)
}

/// SIGINT or SIGTERM (from run.sh's clean-up): the exit status to stop with. The API's
/// `run_until_stopped` listens for them too, but only to stop its servers.
async fn interrupted() -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    let (name, code) = tokio::select! {
        _ = int.recv() => ("SIGINT", 130),
        _ = term.recv() => ("SIGTERM", 143),
    };
    eprintln!("[bench] {name}: stopping");
    code
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// Prints the summary block; returns the exit status.
fn summary(r: &Results, example: &Path) -> i32 {
    let mut measured = true;
    let mut targets_met = true;
    println!();
    let revision = std::env::var("KILN_BENCH_REVISION").unwrap_or_else(|_| "?".into());
    println!("== Kiln benchmark ({} cores, kiln {revision}) ==", cores());
    if let Some(a) = &r.admission {
        match a {
            Ok(a) => {
                let pass = a.pass();
                targets_met &= pass;
                measured &= a.kiln.errors == 0;
                println!(
                    "admission   kiln {:>6.0} req/s  p50 {:.1} ms  p99 {:.1} ms  | bullmq {:>6.0} adds/s p50 {:.1} ms  p99 {:.1} ms  | ratio {:.2}  target >= {}, p99 <= {} ms  {}{}",
                    a.kiln.rate,
                    a.kiln.p50_ms,
                    a.kiln.p99_ms,
                    a.bullmq.rate,
                    a.bullmq.p50_ms,
                    a.bullmq.p99_ms,
                    a.ratio(),
                    admission::MIN_RATIO,
                    admission::MAX_P99_MS,
                    stats::verdict(pass),
                    if a.kiln.errors > 0 {
                        format!("  ({} NON-202 ANSWERS)", a.kiln.errors)
                    } else {
                        String::new()
                    }
                );
            }
            Err(e) => {
                measured = false;
                println!("admission   NOT MEASURED: {e}");
            }
        }
    }
    if let Some(o) = &r.overhead {
        match o {
            Ok(o) => {
                targets_met &= o.pass();
                println!(
                    "overhead    farm median {:.0} ms  direct median {:.0} ms  overhead {:.0} ms  target <= {} ms  {}",
                    o.farm_median(),
                    o.direct_median(),
                    o.overhead(),
                    overhead::TARGET_MS,
                    stats::verdict(o.pass())
                );
            }
            Err(e) => {
                measured = false;
                println!("overhead    NOT MEASURED: {e}");
            }
        }
    }
    if let Some(w) = &r.warm {
        match w {
            Ok(w) => {
                targets_met &= w.pass() && w.cold_pass();
                println!(
                    "warm build  farm median {:.2} s  direct median {:.2} s  ratio {:.2}  target <= {}  {}",
                    w.farm_median() / 1000.0,
                    w.direct_median() / 1000.0,
                    w.ratio(),
                    warm::TARGET_RATIO,
                    stats::verdict(w.pass())
                );
                println!(
                    "cold build  farm median {:.2} s  direct median {:.2} s  ratio {:.2}  target <= {}  {}",
                    stats::median(&w.cold_farm_ms) / 1000.0,
                    stats::median(&w.cold_direct_ms) / 1000.0,
                    w.cold_ratio(),
                    warm::TARGET_COLD_RATIO,
                    stats::verdict(w.cold_pass())
                );
            }
            Err(e) => {
                measured = false;
                println!("warm build  NOT MEASURED ({}): {e}", example.display());
            }
        }
    }
    if let Some(rb) = &r.rollback {
        match rb {
            Ok(rb) => {
                targets_met &= rb.rollback_pass() && rb.reads_pass();
                println!(
                    "rollback    p50 {:.2} ms  p99 {:.2} ms  warm rebuild median {:.2} s  {:.0}x faster  target p99 <= {} ms, >= {}x  {}",
                    rb.p50(),
                    rb.p99(),
                    stats::median(&rb.rebuild_ms) / 1000.0,
                    rb.speedup(),
                    rollback::MAX_ROLLBACK_P99_MS,
                    rollback::MIN_SPEEDUP,
                    stats::verdict(rb.rollback_pass())
                );
                println!(
                    "latest      {:.0} reads/s  p50 {:.2} ms  p99 {:.2} ms  target >= {}/s, p99 <= {} ms  {}",
                    rb.reads_per_s,
                    rb.read_p50_ms,
                    rb.read_p99_ms,
                    rollback::MIN_READS_PER_S,
                    rollback::MAX_READ_P99_MS,
                    stats::verdict(rb.reads_pass())
                );
            }
            Err(e) => {
                measured = false;
                println!("rollback    NOT MEASURED: {e}");
            }
        }
    }
    if let Some(ev) = &r.events {
        match ev {
            Ok(ev) => {
                targets_met &= ev.pass();
                println!(
                    "events      {} SSE clients  p50 {:.2} ms  p99 {:.2} ms  target p99 <= {} ms  {}  | build cost of events {:+.1}%  target <= {:.0}%  {}",
                    events::CLIENTS,
                    ev.p50(),
                    ev.p99(),
                    events::TARGET_P99_MS,
                    stats::verdict(ev.p99() <= events::TARGET_P99_MS),
                    ev.cost() * 100.0,
                    events::TARGET_COST * 100.0,
                    stats::verdict(ev.cost() <= events::TARGET_COST)
                );
            }
            Err(e) => {
                measured = false;
                println!("events      NOT MEASURED: {e}");
            }
        }
    }
    if let Some(d) = &r.dispatch {
        match d {
            Ok(d) => {
                targets_met &= d.pass();
                println!(
                    "dispatch    kiln submit -> build process started  p50 {:.2} ms  p99 {:.2} ms  | bullmq add -> processor invoked  p50 {:.2} ms  p99 {:.2} ms  | bullmq add -> spawned process started  p50 {:.2} ms  p99 {:.2} ms  | target kiln p99 <= bullmq p99 (processor invoked)  {}",
                    d.kiln_p50(),
                    d.kiln_p99(),
                    d.bullmq_p50(),
                    d.bullmq_p99(),
                    d.bullmq_spawn_p50(),
                    d.bullmq_spawn_p99(),
                    stats::verdict(d.pass())
                );
            }
            Err(e) => {
                measured = false;
                println!("dispatch    NOT MEASURED: {e}");
            }
        }
    }
    if let Some(s) = &r.scaleout {
        match s {
            Ok(s) => {
                targets_met &= s.pass();
                let figures = s.figures();
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
                    s.cpu_bound_from().map_or_else(|| "none of".to_owned(), |n| n.to_string()),
                    scaleout::MIN_BUSY * 100.0,
                    stats::verdict(s.pass())
                );
            }
            Err(e) => {
                measured = false;
                println!("scaleout    NOT MEASURED: {e}");
            }
        }
    }
    if let Some(rc) = &r.reclaim {
        match rc {
            Ok(rc) => {
                targets_met &= rc.pass();
                let lease = reclaim::LEASE_SECS as f64;
                println!(
                    "reclaim     kill -9 -> build restarted elsewhere  median lease + {:.2} s  p99 lease + {:.2} s  (lease {} s)  target lease + <= {:.0} s  {}",
                    rc.median_s() - lease,
                    rc.p99_s() - lease,
                    reclaim::LEASE_SECS,
                    reclaim::TARGET_EXTRA_S,
                    stats::verdict(rc.pass())
                );
            }
            Err(e) => {
                measured = false;
                println!("reclaim     NOT MEASURED: {e}");
            }
        }
    }
    if let Some(rl) = &r.ratelimit {
        match rl {
            Ok(rl) => {
                targets_met &= rl.pass();
                println!(
                    "ratelimit   admitted in one window / configured (median of {} runs): new projects {:.0}/{} ({:.2}), rebuilds {:.0}/{} ({:.2}) in a burst of replacing requests, {:.0}/{} one at a time, all across 2 API instances; per IP {:.0}/{} on one instance ({:.2}), {:.0} on two  | target quotas never over; new projects, paced rebuilds and per IP exact  {}",
                    ratelimit::ROUNDS,
                    rl.new_projects.median_admitted(),
                    rl.new_projects.configured,
                    rl.new_projects.accuracy(),
                    rl.rebuilds.median_admitted(),
                    rl.rebuilds.configured,
                    rl.rebuilds.accuracy(),
                    rl.rebuilds_paced.median_admitted(),
                    rl.rebuilds_paced.configured,
                    rl.per_ip_one.median_admitted(),
                    rl.per_ip_one.configured,
                    rl.per_ip_one.accuracy(),
                    rl.per_ip_two.median_admitted(),
                    stats::verdict(rl.pass())
                );
            }
            Err(e) => {
                measured = false;
                println!("ratelimit   NOT MEASURED: {e}");
            }
        }
    }
    if let Some(m) = &r.maintain {
        match m {
            Ok(m) => {
                println!(
                    "maintain    kiln-ops maintain over {} versions / {} blobs (+{} unreferenced)  1st run {:.1} s, max RSS {:.0} MB ({} trashed, {} pointers set)  2nd run {:.1} s, max RSS {:.0} MB ({} trashed)  | data generated in {:.0} s{}",
                    maintain::VERSIONS,
                    maintain::BLOBS,
                    maintain::GARBAGE,
                    m.first.wall_s,
                    m.first.max_rss_kb as f64 / 1024.0,
                    m.first.blobs("trashed"),
                    m.first.repaired(),
                    m.second.wall_s,
                    m.second.max_rss_kb as f64 / 1024.0,
                    m.second.blobs("trashed"),
                    m.generation_s,
                    if m.cached { " (cached from an earlier run)" } else { "" }
                );
                storage_line(&m.storage);
            }
            Err(e) => {
                measured = false;
                println!("maintain    NOT MEASURED: {e}");
            }
        }
    }
    match &r.storage {
        Some(Ok(s)) => storage_line(s),
        Some(Err(e)) => {
            measured = false;
            println!("storage     NOT MEASURED: {e}");
        }
        None => {}
    }
    println!("(load average at the end: {})", load_average());
    if !measured {
        1
    } else if !targets_met && std::env::var("KILN_BENCH_STRICT").is_ok_and(|v| v == "1") {
        3
    } else {
        0
    }
}

fn storage_line(s: &maintain::Storage) {
    println!(
        "storage     {} versions of the Vite example, one file changed each: content-addressed {:.2} MB vs a zip per version {:.2} MB  kiln/zips {:.2}  (uncompressed, not deduplicated {:.2} MB; each later version adds {:.3} MB of content)",
        maintain::STORAGE_VERSIONS,
        s.kiln_bytes() as f64 / 1e6,
        s.zip_bytes as f64 / 1e6,
        s.ratio(),
        s.raw_bytes as f64 / 1e6,
        s.later_new_bytes / 1e6
    );
}
