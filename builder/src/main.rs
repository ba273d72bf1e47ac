//! `kiln-builder`: the build daemon, and `kiln-builder maintain`, the host's upkeep; configured
//! by `KILN_*` variables (`--help` lists them).

use clap::{Parser, Subcommand};
use kiln_shared::config::{self, Binary, Settings};
use tokio_util::sync::CancellationToken;

/// Worker threads' stacks: a build's future is deep (the default 2 MiB overflows in debug builds).
const STACK_SIZE: usize = 8 * 1024 * 1024;

/// Kiln's builder daemon: runs queued builds (pnpm install and build) in a sandbox.
///
/// Without a command it runs the daemon until SIGTERM. It is configured by environment
/// variables (below).
#[derive(Parser)]
#[command(version, after_help = config::help(Binary::Builder))]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The host's upkeep (nightly): the advisory database, leftover workspaces, the pnpm store.
    ///
    /// Refreshes the advisory database, waits for running builds, removes leftover workspaces
    /// and prunes the pnpm store. Exits 0 when it ran, 75 when builds kept running past
    /// --wait, 1 on an error, 2 on a bad argument.
    #[command(after_help = config::help(Binary::Builder))]
    Maintain {
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
        /// How long to wait for running builds to finish, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 1800)]
        wait: u64,
    },
}

fn main() {
    if let Some(Command::Maintain { json, wait }) = Cli::parse().command {
        std::process::exit(maintain(json, std::time::Duration::from_secs(wait)));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(STACK_SIZE)
        .build()
        .expect("starting the tokio runtime");
    runtime.block_on(daemon());
}

async fn daemon() {
    kiln_shared::telemetry::init("info");
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kiln-builder: {e}");
            std::process::exit(2);
        }
    };
    let shutdown = CancellationToken::new();
    let signal_token = shutdown.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown requested: no new builds will be claimed");
        signal_token.cancel();
    });
    match kiln_builder::run(settings, shutdown).await {
        Ok(()) => tracing::info!("kiln-builder stopped"),
        Err(e) => {
            eprintln!("kiln-builder: {e:#}");
            std::process::exit(1);
        }
    }
}

/// `kiln-builder maintain`: the host's upkeep (see the library's `upkeep`). Exits 0 when it
/// ran, 75 when builds kept running past `--wait` (default 1800 s), 1 on an error (clap
/// exits 2 on a bad argument).
#[allow(clippy::print_stdout)]
fn maintain(json: bool, wait: std::time::Duration) -> i32 {
    kiln_shared::telemetry::init("info");
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kiln-builder: {e}");
            return 2;
        }
    };
    let upkeep = kiln_builder::upkeep::Upkeep {
        work_dir: settings.builder.work_dir.clone(),
        pnpm_store: settings.builder.pnpm_store.clone(),
        store_max: settings.maintenance.pnpm_store_max_bytes,
        wait,
        store_user: Some(settings.sandbox.store_user),
    };
    let audit = &settings.audit;
    let refreshed = match (&audit.db, &audit.source) {
        (Some(db), Some(url)) => Some(refresh_audit_db(url, db, audit.max_bytes)),
        _ => None,
    };
    if let Some(Err(e)) = &refreshed {
        eprintln!("kiln-builder maintain: the advisory database was not refreshed: {e}");
    }
    match upkeep.run() {
        Ok(r) => {
            let refreshed = refreshed.and_then(Result::ok);
            if json {
                let mut out = serde_json::to_value(&r).unwrap_or_default();
                out["audit"] = serde_json::to_value(&refreshed).unwrap_or_default();
                println!("{out}");
            } else {
                if let Some(a) = &refreshed {
                    match a.updated {
                        true => println!(
                            "advisory database: {} records from {} ({} MB downloaded)",
                            a.records,
                            a.source,
                            a.downloaded_bytes >> 20
                        ),
                        false => println!("advisory database: {} unchanged", a.source),
                    }
                }
                println!(
                    "waited {} ms for builds; removed {} leftover workspaces ({} MB) and {} warm dependency trees; pnpm store {} MB -> {} MB ({}{})",
                    r.waited_ms,
                    r.workspaces_removed,
                    r.workspace_bytes_freed >> 20,
                    r.dep_trees_removed,
                    r.store_bytes_before >> 20,
                    r.store_bytes_after >> 20,
                    if r.pruned { "pruned" } else { "prune failed" },
                    if r.emptied { ", emptied: over KILN_PNPM_STORE_MAX_MB" } else { "" }
                );
            }
            0
        }
        Err(e @ kiln_builder::upkeep::UpkeepError::Busy(_)) => {
            eprintln!("kiln-builder maintain: {e}");
            75
        }
        Err(e) => {
            eprintln!("kiln-builder maintain: {e}");
            1
        }
    }
}

/// Refreshes the advisory database (before the upkeep: no build waits on the download).
fn refresh_audit_db(
    url: &str,
    db: &std::path::Path,
    max_bytes: u64,
) -> anyhow::Result<kiln_builder::audit::refresh::RefreshReport> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(kiln_builder::audit::refresh::refresh(url, db, max_bytes))?)
}
