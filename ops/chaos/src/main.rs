//! kiln-chaos: Kiln's chaos suite. Run it through `ops/chaos/run.sh [--short]`, which starts
//! the private PostgreSQL and Redis it needs (and restarts), and builds the binaries it runs;
//! see ops/chaos/README.md.
//!
//!     kiln-chaos [--short] [--seed N] [kills] [redis] [postgres] [partition] [cancel]
//!
//! With no scenario named, all run, in that order. Progress goes to stderr; the table to
//! stdout. Exit status: 0 when every invariant held, 1 when one did not (or a scenario could not
//! run), 2 for a bad argument.

mod check;
mod env;
mod farm;
mod load;
mod procs;
mod project;
mod proxy;
mod report;
mod scenarios;

use std::time::Instant;

use scenarios::shape::run as run_scenario;
use scenarios::Ctx;

const SCENARIOS: [&str; 5] = ["kills", "redis", "postgres", "partition", "cancel"];

#[derive(Debug)]
struct Args {
    short: bool,
    seed: u64,
    scenarios: Vec<&'static str>,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut short = false;
    let mut seed = None;
    let mut scenarios = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--short" => short = true,
            "--seed" => {
                let raw = it.next().ok_or("--seed needs a number")?;
                seed = Some(
                    raw.parse()
                        .map_err(|_| format!("--seed {raw:?} is not a number"))?,
                );
            }
            name => {
                let known = SCENARIOS.iter().find(|s| **s == name).ok_or_else(|| {
                    format!("unknown argument {name:?}: expected --short, --seed N or one of {SCENARIOS:?}")
                })?;
                if !scenarios.contains(known) {
                    scenarios.push(*known);
                }
            }
        }
    }
    if scenarios.is_empty() {
        scenarios = SCENARIOS.to_vec();
    }
    scenarios.sort_by_key(|s| SCENARIOS.iter().position(|k| k == s));
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    Ok(Args {
        short,
        seed,
        scenarios,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kiln-chaos: {e}");
            std::process::exit(2);
        }
    };
    kiln_shared::telemetry::init("kiln_chaos=info");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = runtime.block_on(async {
        tokio::select! {
            code = run(args) => code,
            code = interrupted() => code,
        }
    });
    // Dropping the runtime drops the farms, which kill their processes.
    drop(runtime);
    std::process::exit(code);
}

async fn run(args: Args) -> i32 {
    let env = match env::ChaosEnv::from_env() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("kiln-chaos: {e:#}");
            return 1;
        }
    };
    let ctx = Ctx {
        env,
        short: args.short,
        seed: args.seed,
    };
    let form = if args.short { "short form" } else { "full run" };
    tracing::info!(seed = args.seed, "{form}: {}", args.scenarios.join(", "));
    let whole = Instant::now();
    let mut rows = Vec::new();
    for name in &args.scenarios {
        let started = Instant::now();
        tracing::info!("== {name} ==");
        let row = match *name {
            "kills" => run_scenario::<scenarios::kills::KillNine>(&ctx).await,
            "redis" => run_scenario::<scenarios::redis::RedisKill>(&ctx).await,
            "postgres" => run_scenario::<scenarios::postgres::PostgresStop>(&ctx).await,
            "partition" => run_scenario::<scenarios::partition::Partition>(&ctx).await,
            _ => run_scenario::<scenarios::cancel::Cancels>(&ctx).await,
        };
        let row = row.unwrap_or_else(|e| report::Row::broken(name, &e, started.elapsed().as_secs_f64()));
        tracing::info!(
            "{name}: {} in {:.0} s",
            if row.pass() { "pass" } else { "FAIL" },
            row.secs
        );
        rows.push(row);
    }
    let header = format!(
        "{form}, seed {}, {} cores, {:.0} s in all",
        args.seed,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        whole.elapsed().as_secs_f64()
    );
    print_report(&report::render(&rows, &header));
    if rows.iter().all(report::Row::pass) {
        0
    } else {
        1
    }
}

/// The one place the suite writes to stdout.
#[allow(clippy::print_stdout)]
fn print_report(table: &str) {
    println!("{table}");
}

/// SIGINT or SIGTERM (run.sh's clean-up): the exit status to stop with.
async fn interrupted() -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    let code = tokio::select! {
        _ = int.recv() => 130,
        _ = term.recv() => 143,
    };
    tracing::warn!("interrupted: stopping the farms");
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Args, String> {
        parse_args(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn arguments_pick_the_form_the_seed_and_the_scenarios_in_order() {
        let a = args(&["cancel", "--short", "kills", "--seed", "7", "kills"]).unwrap();
        assert!(a.short);
        assert_eq!(a.seed, 7);
        assert_eq!(a.scenarios, ["kills", "cancel"]);
        assert_eq!(args(&[]).unwrap().scenarios, SCENARIOS);
        assert!(args(&["--seed"]).is_err());
        assert!(args(&["chaos-monkey"]).unwrap_err().contains("unknown argument"));
    }
}
