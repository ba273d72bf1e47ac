//! Cancels during install, during the build step and during the upload. The install and
//! build stages hold forever with a child that ignores SIGTERM, so only the SIGKILL after
//! `KILN_CANCEL_GRACE_SECS` ends them; the upload stage writes thousands of files so that the
//! upload lasts long enough to be caught. After each cancel: the answer is `cancelled`, the
//! project takes a new build at once, and once the grace period has passed no process of the
//! cancelled build is left (found in /proc by the build's workspace, on every daemon).

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use super::shape::{Checked, LoadRun, Scenario};
use super::{wait_for_build, wait_for_builders, Ctx};
use crate::check::{Expect, Verdict};
use crate::farm::Farm;
use crate::load::{self, latest_event, SharedLedger};
use crate::procs::{self, Proc};
use crate::project::Recipe;

const DAEMONS: [&str; 2] = ["c1", "c2"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Install,
    Build,
    Upload,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Install => "install",
            Stage::Build => "build",
            Stage::Upload => "upload",
        }
    }
}

/// The processes of build `id`, on any daemon.
fn processes_of(farm: &Farm, id: &str) -> Vec<Proc> {
    farm.daemon_names()
        .iter()
        .flat_map(|d| procs::of_build(&farm.work_dir(d), id))
        .collect()
}

fn listed(p: &[Proc]) -> String {
    p.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The scenario: two daemons, and a cancel in each stage.
pub struct Cancels;

/// The cancelled builds, and each cancel's violations and note.
pub struct Seen {
    cancelled: HashSet<String>,
    violations: Vec<String>,
    notes: Vec<String>,
}

impl Scenario for Cancels {
    const NAME: &'static str = "cancel";
    const ROW: &'static str = "cancel";
    type Seen = Seen;

    async fn prepare(_ctx: &Ctx, farm: &Farm) -> anyhow::Result<Self> {
        for d in DAEMONS {
            farm.start_daemon(d, None)?;
        }
        wait_for_builders(farm, &DAEMONS, Duration::from_secs(90)).await?;
        Ok(Self)
    }

    async fn disrupt(&mut self, _ctx: &Ctx, run: &LoadRun) -> anyhow::Result<Seen> {
        let mut cancelled = HashSet::new();
        let mut violations = Vec::new();
        let mut notes = Vec::new();
        for stage in [Stage::Install, Stage::Build, Stage::Upload] {
            match cancel_during(&run.farm, &run.ledger, stage).await {
                Ok((id, v, n)) => {
                    cancelled.insert(id);
                    violations.extend(v);
                    notes.push(n);
                }
                Err(e) => violations.push(format!("cancel during {}: {e:#}", stage.name())),
            }
        }
        Ok(Seen {
            cancelled,
            violations,
            notes,
        })
    }

    fn expect(&self, seen: &Seen) -> Expect {
        Expect {
            cancelled: seen.cancelled.clone(),
        }
    }

    async fn check(self, run: &Checked, seen: Seen, verdict: &mut Verdict) -> anyhow::Result<usize> {
        for id in &seen.cancelled {
            let key: Option<String> =
                sqlx::query_scalar("select output_manifest_key from versions where id = $1")
                    .bind(id)
                    .fetch_one(&run.farm.db)
                    .await?;
            if key.is_some() {
                verdict
                    .violations
                    .push(format!("cancelled build {id} recorded an output ({key:?})"));
            }
        }
        verdict.violations.extend(seen.violations);
        verdict.notes.extend(seen.notes);
        Ok(0)
    }
}

/// Submits a build, cancels it in `stage`, checks what is left; the cancelled build's id, the
/// violations and a note.
async fn cancel_during(
    farm: &Farm,
    ledger: &SharedLedger,
    stage: Stage,
) -> anyhow::Result<(String, Vec<String>, String)> {
    let project = format!("cancel-{}", stage.name());
    let mut parts = 3_000;
    for _ in 0..3 {
        let mut recipe = Recipe::quick(0, 2);
        match stage {
            Stage::Install => recipe.hold_install = true,
            Stage::Build => recipe.hold_build = true,
            Stage::Upload => {
                recipe.parts = parts;
                recipe.part_bytes = 2_048;
            }
        }
        let (status, answer) = load::submit_once(farm, ledger, "chaos", &project, &recipe).await?;
        anyhow::ensure!(status == 202, "the build was refused: {status} {answer}");
        let id = answer["buildId"].as_str().context("a buildId")?.to_owned();
        let seen = match stage {
            Stage::Install | Stage::Build => {
                let event = if stage == Stage::Install {
                    "install_started"
                } else {
                    "build_step_started"
                };
                wait_for_build(farm, &id, Duration::from_secs(90), event, |b| {
                    latest_event(b) == Some(event)
                })
                .await?;
                // Until the step's processes run.
                let from = Instant::now();
                loop {
                    let p = processes_of(farm, &id);
                    if p.iter().any(|p| p.cmdline.contains("sleep 120")) {
                        break p;
                    }
                    anyhow::ensure!(
                        from.elapsed() < Duration::from_secs(60),
                        "the {} step never ran",
                        stage.name()
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Stage::Upload => {
                wait_for_upload(farm, &id).await?;
                Vec::new()
            }
        };
        let (status, answer) = farm.post(&format!("/v1/builds/{id}/cancel")).await?;
        if stage == Stage::Upload && status == 409 {
            // The upload was over before the cancel came: a larger one.
            parts *= 2;
            continue;
        }
        let mut violations = Vec::new();
        if status != 200 || answer["status"] != "cancelled" {
            violations.push(format!(
                "cancel during {}: answered {status} {answer}",
                stage.name()
            ));
        }
        let cancelled_at = Instant::now();
        // The project's slot is free at once.
        let (next, answer) = load::submit_once(farm, ledger, "chaos", &project, &Recipe::quick(0, 2)).await?;
        if next != 202 {
            violations.push(format!(
                "after a cancel during {}, the project's next build was refused: {next} {answer}",
                stage.name()
            ));
        }
        let grace = Duration::from_secs(farm.options.cancel_grace_secs);
        tokio::time::sleep_until(cancelled_at + grace + Duration::from_secs(3)).await;
        let left = processes_of(farm, &id);
        if !left.is_empty() {
            violations.push(format!(
                "cancel during {}: {} s after the cancel, processes of the build still run: {}",
                stage.name(),
                (grace + Duration::from_secs(3)).as_secs(),
                listed(&left)
            ));
        }
        let note = format!(
            "cancel during {}: {} processes ran at the cancel ({}), {} left after the grace period",
            stage.name(),
            seen.len(),
            listed(&seen),
            left.len()
        );
        return Ok((id, violations, note));
    }
    anyhow::bail!("every upload was over before its cancel (last one of {parts} files)")
}

/// Waits until the build's `upload_started` event is recorded (read from Postgres directly: the
/// upload is short).
async fn wait_for_upload(farm: &Farm, id: &str) -> anyhow::Result<()> {
    let from = Instant::now();
    loop {
        let uploading: bool = sqlx::query_scalar(
            "select exists (select 1 from build_events where build_id = $1 and type = 'upload_started')",
        )
        .bind(id)
        .fetch_one(&farm.db)
        .await?;
        if uploading {
            return Ok(());
        }
        anyhow::ensure!(
            from.elapsed() < Duration::from_secs(120),
            "build {id} never uploaded"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
