//! kiln-bench: Kiln's benchmark. Run it through `ops/bench/run.sh`, which starts the private
//! PostgreSQL and Redis it needs (part `diagnostics` alone needs neither); see ops/bench/README.md for what each figure means.
//!
//!     kiln-bench [admission] [overhead] [warm] [noop] [packages] [rollback] [previews] [events] [dispatch] [scaleout] [reclaim] [ratelimit] [maintain] [diagnostics] [frameworks]
//!     (no argument: all but frameworks, which only runs when named)
//!
//! Per-run figures go to stderr as they come; the details of each part and the summary block go
//! to stdout. Exit status: 0 when every figure was measured (whatever the targets say), 1 when a
//! part could not be measured (an answer that was not 202, a failed build, a missing service),
//! 2 for a bad argument. With KILN_BENCH_STRICT=1 a missed target also exits 3.
#![allow(clippy::print_stdout)]

mod admission;
mod cpu;
mod daemons;
mod diagnostics;
mod direct;
mod dispatch;
mod events;
mod farm;
mod frameworks;
mod maintain;
mod noop;
mod overhead;
mod packages;
mod previews;
mod ratelimit;
mod reclaim;
mod rollback;
mod scaleout;
mod starts;
mod stats;
mod summary;
mod warm;

use std::path::{Path, PathBuf};
use std::time::Instant;

use summary::Summary;

/// A part of the benchmark, as named on the command line; parts run (and are summarised) in
/// this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Admission,
    Overhead,
    Warm,
    Noop,
    Packages,
    Rollback,
    Previews,
    Events,
    Dispatch,
    Scaleout,
    Reclaim,
    Ratelimit,
    Maintain,
    Storage,
    Diagnostics,
    Frameworks,
}

const PART_NAMES: &str =
    "admission, overhead, warm, noop, packages, rollback, previews, events, dispatch, scaleout, reclaim, ratelimit, maintain, storage, diagnostics, frameworks or all";

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Admission => "admission",
            Part::Overhead => "overhead",
            Part::Warm => "warm",
            Part::Noop => "noop",
            Part::Packages => "packages",
            Part::Rollback => "rollback",
            Part::Previews => "previews",
            Part::Events => "events",
            Part::Dispatch => "dispatch",
            Part::Scaleout => "scaleout",
            Part::Reclaim => "reclaim",
            Part::Ratelimit => "ratelimit",
            Part::Maintain => "maintain",
            Part::Storage => "storage",
            Part::Diagnostics => "diagnostics",
            Part::Frameworks => "frameworks",
        }
    }

    /// The part needs the farm's services (PostgreSQL, Redis and the folders run.sh makes).
    fn needs_farm(self) -> bool {
        self != Part::Diagnostics
    }
}

fn parse_parts(args: &[String]) -> Result<Vec<Part>, String> {
    if args.is_empty() || args.iter().any(|a| a == "all") {
        return Ok(vec![
            Part::Admission,
            Part::Overhead,
            Part::Warm,
            Part::Noop,
            Part::Packages,
            Part::Rollback,
            Part::Events,
            Part::Dispatch,
            Part::Scaleout,
            Part::Reclaim,
            Part::Ratelimit,
            Part::Maintain,
            Part::Diagnostics,
        ]);
    }
    let mut parts = Vec::new();
    for a in args {
        let p = match a.as_str() {
            "admission" => Part::Admission,
            "overhead" => Part::Overhead,
            "warm" => Part::Warm,
            "noop" => Part::Noop,
            "packages" => Part::Packages,
            "rollback" => Part::Rollback,
            "previews" => Part::Previews,
            "events" => Part::Events,
            "dispatch" => Part::Dispatch,
            "scaleout" => Part::Scaleout,
            "reclaim" => Part::Reclaim,
            "ratelimit" => Part::Ratelimit,
            "maintain" => Part::Maintain,
            // The storage figure alone (`maintain` measures it too).
            "storage" => Part::Storage,
            "diagnostics" => Part::Diagnostics,
            // Many cold installs of large projects: too heavy for `all`, run only when named.
            "frameworks" => Part::Frameworks,
            other => return Err(format!("unknown part {other:?}: expected {PART_NAMES}")),
        };
        if !parts.contains(&p) {
            parts.push(p);
        }
    }
    parts.sort_by_key(|p| *p as u8);
    Ok(parts)
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
    let env = if parts.iter().any(|p| p.needs_farm()) {
        match farm::Env::from_env() {
            Ok(e) => Some(e),
            Err(e) => {
                eprintln!("kiln-bench: {e:#}");
                return 1;
            }
        }
    } else {
        None
    };
    let bench_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let example = bench_dir.join("../../examples/vite-react");
    let mut results = Vec::new();
    for part in parts {
        let started = Instant::now();
        eprintln!("[bench] == {} ==", part.name());
        let report = run_part(part, env.as_ref(), &bench_dir, &example)
            .await
            .map_err(|e| format!("{e:#}"));
        results.push((part, report));
        eprintln!(
            "[bench] {} took {:.1} s",
            part.name(),
            started.elapsed().as_secs_f64()
        );
    }
    summary::print(&results, &example)
}

/// Runs one part; its report.
async fn run_part(
    part: Part,
    env: Option<&farm::Env>,
    bench_dir: &Path,
    example: &Path,
) -> anyhow::Result<Box<dyn Summary>> {
    let farm = || env.ok_or_else(|| anyhow::anyhow!("part {} needs the farm's services", part.name()));
    Ok(match part {
        Part::Admission => Box::new(admission::run(farm()?, bench_dir).await?),
        Part::Overhead => Box::new(overhead::run(farm()?).await?),
        Part::Warm => Box::new(warm::run(farm()?, example).await?),
        Part::Noop => Box::new(noop::run(farm()?, example).await?),
        Part::Packages => Box::new(packages::run(farm()?, example).await?),
        Part::Rollback => Box::new(rollback::run(farm()?, example).await?),
        Part::Previews => Box::new(previews::run(farm()?, &example.with_file_name("static-site")).await?),
        Part::Events => Box::new(events::run(farm()?).await?),
        Part::Dispatch => Box::new(dispatch::run(farm()?, bench_dir).await?),
        Part::Scaleout => Box::new(scaleout::run(farm()?).await?),
        Part::Reclaim => Box::new(reclaim::run(farm()?).await?),
        Part::Ratelimit => Box::new(ratelimit::run(farm()?).await?),
        Part::Maintain => Box::new(maintain::run(farm()?, example).await?),
        // The storage figure alone (`maintain` measures it too).
        Part::Storage => Box::new(maintain::storage_only(farm()?, example).await?),
        Part::Diagnostics => Box::new(diagnostics::run()?),
        Part::Frameworks => Box::new(frameworks::run(farm()?, &bench_dir.join("../..")).await?),
    })
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
