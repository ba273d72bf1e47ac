//! `kiln-ops maintain [--dry-run] [--json] [--metrics-file PATH]`: one maintenance run (see
//! the library). Exits 0 when it ran, 75 when another run holds the lock (it says which), 1
//! on an error, 2 on a bad argument (clap's usage error).
//!
//! `kiln-ops reencrypt [--dry-run] [--json]`: every project secret sealed again under the
//! first key of `KILN_SECRETS_KEYS` (key rotation). Exits 1 when a secret could not be opened.

// A command-line tool: its report is its output.
#![allow(clippy::print_stdout)]

use clap::{Parser, Subcommand};
use kiln_ops::{maintain, Farm, Outcome};
use kiln_shared::backends::{Backends, Role};
use kiln_shared::config::{self, Binary, Settings};

/// Kiln's fleet-wide maintenance.
///
/// It is configured by environment variables (below).
#[derive(Parser)]
#[command(version, after_help = config::help(Binary::Ops))]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One maintenance run (nightly; one runner fleet-wide at a time).
    ///
    /// Retention, blob garbage collection, verification, and repairs of the latest pointers
    /// and the queue. Exits 0 when it ran, 75 when another run holds the lock (it says
    /// which), 1 on an error, 2 on a bad argument.
    #[command(after_help = config::help(Binary::Ops))]
    Maintain {
        /// Report what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
        /// Also write the report as Prometheus metrics to this file (for node_exporter's
        /// textfile collector), written whole and renamed into place.
        #[arg(long, value_name = "PATH")]
        metrics_file: Option<std::path::PathBuf>,
    },
    /// Seal every project secret again under the first key of KILN_SECRETS_KEYS.
    ///
    /// Rotation: put the new key first in KILN_SECRETS_KEYS (keeping the old ones), restart
    /// the API and builders, run this, then drop the old keys. Safe to run twice. Exits 1
    /// when a secret could not be opened (its key is not configured).
    #[command(after_help = config::help(Binary::Ops))]
    Reencrypt {
        /// Count what would be sealed again, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let command = Cli::parse().command;
    kiln_shared::telemetry::init("info");
    // A missing or invalid setting is exit 2, as for kiln-api and kiln-builder.
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kiln-ops: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let (name, result) = match command {
        Command::Maintain {
            dry_run,
            json,
            metrics_file,
        } => ("maintain", run(settings, dry_run, json, metrics_file).await),
        Command::Reencrypt { dry_run, json } => ("reencrypt", reencrypt(settings, dry_run, json).await),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("kiln-ops {name}: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn reencrypt(settings: Settings, dry_run: bool, json: bool) -> anyhow::Result<u8> {
    let keyring = kiln_shared::secrets::Keyring::from_settings(&settings.encryption)?
        .ok_or_else(|| anyhow::anyhow!("no key is configured: set KILN_SECRETS_KEYS (the new key first)"))?;
    let Backends { db, .. } = Backends::connect(&settings, Role::Maintenance).await?;
    let report = kiln_shared::db::projects::reencrypt::reencrypt(&db, &keyring, dry_run).await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} {} secret(s) under key {}{}; {} set again meanwhile (left as set); {} could not be opened",
            if dry_run { "would seal" } else { "sealed" },
            report.resealed,
            report.key_id,
            if dry_run {
                " (dry run: nothing changed)"
            } else {
                ""
            },
            report.changed_meanwhile,
            report.failed.len()
        );
        for failed in &report.failed {
            println!("  {failed}");
        }
    }
    Ok(if report.failed.is_empty() { 0 } else { 1 })
}

async fn run(
    settings: Settings,
    dry_run: bool,
    json: bool,
    metrics_file: Option<std::path::PathBuf>,
) -> anyhow::Result<u8> {
    let Backends {
        db,
        queue,
        artifacts,
        urls,
        ..
    } = Backends::connect(&settings, Role::Maintenance).await?;
    let farm = Farm {
        db,
        queue,
        artifacts,
        settings: settings.maintenance.clone(),
        lease: settings.fleet.lease,
        urls,
    };
    let holder = format!(
        "{}:{}:{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into()),
        std::process::id(),
        ulid::Ulid::new()
    );
    match maintain(&farm, &holder, dry_run).await? {
        Outcome::Busy {
            holder,
            expires_in_ms,
        } => {
            let message = format!(
                "another maintenance run holds the lock ({holder}, for {} s more unless it renews it): not running",
                expires_in_ms.max(0) / 1000
            );
            if json {
                println!("{}", serde_json::json!({ "ran": false, "reason": message }));
            } else {
                println!("{message}");
            }
            Ok(75)
        }
        Outcome::Ran(report) => {
            if let Some(path) = &metrics_file {
                // Written whole, then renamed: the collector never reads half a file.
                let tmp = path.with_extension("prom.tmp");
                // 0644 whatever the unit's UMask: node_exporter's textfile collector runs as
                // another user and must read it.
                std::fs::write(&tmp, report.prometheus(chrono::Utc::now()))
                    .and_then(|()| {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
                    })
                    .and_then(|()| std::fs::rename(&tmp, path))
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            }
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                let p = &report.pointers;
                println!(
                    "maintenance run {}{} in {} ms",
                    report.fence,
                    if report.dry_run {
                        " (dry run: nothing changed)"
                    } else {
                        ""
                    },
                    report.millis
                );
                let r = &report.retention;
                println!(
                    "retention: {} versions expired, {} deleted; {} to archive, {} archived; {} events and {} webhook deliveries past retention",
                    r.expired, r.deleted, r.to_archive, r.archived, r.events, r.webhook_deliveries
                );
                let b = &report.blobs;
                println!(
                    "blobs: {} versions, {} manifests, {} referenced ({} MB); found {} in blobs/, {} in archive/, {} in trash/",
                    b.versions, b.manifests, b.referenced, b.referenced_bytes >> 20,
                    b.hot.objects, b.archive.objects, b.trash.objects
                );
                println!(
                    "blobs: {} archived, {} unarchived, {} trashed ({} MB), {} restored from the trash, {} deleted for good ({} MB), {} in their grace period, {} duplicates removed",
                    b.archived, b.unarchived, b.trashed, b.trashed_bytes >> 20, b.restored,
                    b.deleted, b.deleted_bytes >> 20, b.in_grace, b.duplicates
                );
                println!(
                    "objects of deleted versions: {} manifests, {} logs",
                    b.manifests_deleted, b.logs_deleted
                );
                let k = &report.packages;
                println!(
                    "package cache: {} packages unused for {} days forgotten, {} tarballs deleted ({} MB)",
                    k.forgotten,
                    farm.settings.package_cache_unused.as_secs() / 86_400,
                    k.deleted,
                    k.deleted_bytes >> 20
                );
                let v = &b.verify;
                println!(
                    "verification: {} missing, {} corrupt, {} sampled and hashed, {} manifests missing, {} versions need a rebuild",
                    v.missing_count, v.corrupt_count, v.sampled, v.missing_manifests.len(), v.needs_rebuild.len()
                );
                println!(
                    "latest pointers: {} checked, {} missing, {} wrong, {} repaired, {} changed meanwhile",
                    p.checked,
                    p.missing.len(),
                    p.wrong.len(),
                    p.repaired,
                    p.changed_meanwhile
                );
                let q = &report.queue;
                println!(
                    "queue: {} queued builds without an entry queued again, {} superseded; {} running builds without a claim put back; {} stale project slots released",
                    q.republished.len(),
                    q.superseded.len(),
                    q.taken_over.len(),
                    q.released.len()
                );
            }
            Ok(0)
        }
    }
}
