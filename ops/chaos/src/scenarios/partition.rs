//! A daemon cut off from Redis for longer than the lease, through a proxy that stops forwarding
//! without closing anything ([`crate::proxy`]). Daemon `p` reaches Redis only through the
//! proxy (Postgres directly); `q` and `r` reach it directly. Each round, `p` alone takes a build;
//! once its build step runs, `q` and `r` join, and `p` is cut off for three leases. The build must
//! end deployed once, from whichever attempt the row names (the stored output must be that
//! attempt's), and `p` must come back and build again.
//!
//! Rounds (the short form runs the first):
//! - `mid-build`: `p` is cut off early in a long build step: its claim runs out, `q` or `r` takes
//!   the build over, and `p` must stop its attempt and record nothing.
//! - `at-takeover` (full run): `p`'s build step ends about when the takeover happens: either
//!   attempt may win, never both.
//! - `after-build` (full run): `p`'s build step ends just after the cut, so `p` goes on to
//!   upload and record while Postgres is reachable and Redis is not; another daemon takes the
//!   build over or settles what `p` recorded; then a newer build of the project deploys while
//!   `p` is still cut off. Nothing `p` sent before or during the cut, delivered after the heal,
//!   may undo the newer build (its latest pointer) or the recorded result. (Measured: `p` does
//!   not record; it waits for Redis to ship its log before recording, and its claim runs out.)

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use super::shape::{Checked, LoadRun, Scenario};
use super::{wait_for_build, wait_for_builders, Ctx};
use crate::check::Verdict;
use crate::farm::Farm;
use crate::load::{self, latest_event, Plan, Request, SharedLedger};
use crate::project::Recipe;
use crate::proxy::Proxy;

const OTHERS: [&str; 2] = ["q", "r"];

#[derive(Debug, Clone, Copy)]
struct Round {
    name: &'static str,
    /// The build script's wait.
    sleep_ms: u64,
    /// From the build step's start to the cut.
    cut_after: Duration,
    /// The build must be taken over from `p`.
    must_move: bool,
    /// A newer build of the project is deployed while `p` is still cut off.
    newer_meanwhile: bool,
}

const ROUNDS: [Round; 3] = [
    Round {
        name: "mid-build",
        sleep_ms: 9_000,
        cut_after: Duration::from_millis(1_000),
        must_move: true,
        newer_meanwhile: false,
    },
    Round {
        name: "at-takeover",
        sleep_ms: 5_000,
        cut_after: Duration::from_millis(500),
        must_move: false,
        newer_meanwhile: false,
    },
    Round {
        name: "after-build",
        sleep_ms: 1_500,
        cut_after: Duration::from_millis(1_200),
        must_move: false,
        newer_meanwhile: true,
    },
];

fn terminal(b: &serde_json::Value) -> bool {
    ["deployed", "failed", "cancelled", "superseded"].contains(&b["status"].as_str().unwrap_or_default())
}

/// The scenario: daemon `p` behind the proxy, and the rounds.
pub struct Partition {
    proxy: Proxy,
}

/// The rounds' violations and notes, and how many rounds there were.
pub struct Seen {
    violations: Vec<String>,
    notes: Vec<String>,
    rounds: usize,
}

impl Scenario for Partition {
    const NAME: &'static str = "partition";
    const ROW: &'static str = "partition";
    type Seen = Seen;

    async fn prepare(ctx: &Ctx, farm: &Farm) -> anyhow::Result<Self> {
        let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], ctx.env.redis_port))).await?;
        farm.start_daemon("p", Some(format!("redis://127.0.0.1:{}", proxy.port)))?;
        wait_for_builders(farm, &["p"], Duration::from_secs(90)).await?;
        Ok(Self { proxy })
    }

    async fn disrupt(&mut self, ctx: &Ctx, run: &LoadRun) -> anyhow::Result<Seen> {
        let (farm, proxy, ledger) = (&run.farm, &self.proxy, &run.ledger);
        let lease = Duration::from_secs(farm.options.lease_secs);
        let rounds = if ctx.short { &ROUNDS[..1] } else { &ROUNDS[..] };
        let mut violations = Vec::new();
        let mut notes = Vec::new();
        for (i, round) in rounds.iter().enumerate() {
            let outcome = play(farm, proxy, ledger, lease, i, round).await;
            match outcome {
                Ok((v, n)) => {
                    violations.extend(v);
                    notes.push(n);
                }
                Err(e) => {
                    proxy.heal();
                    violations.push(format!("round {}: {e:#}", round.name));
                }
            }
        }

        // Back from the partition, p builds again: it is the only daemon left.
        for n in OTHERS {
            farm.stop_daemon(n).await?;
        }
        let after = async {
            let (status, answer) =
                load::submit_once(farm, ledger, "chaos", "part-after", &Recipe::quick(0, 3)).await?;
            anyhow::ensure!(
                status == 202,
                "a build after the partition was refused: {status} {answer}"
            );
            let id = answer["buildId"].as_str().context("a buildId")?.to_owned();
            wait_for_build(farm, &id, Duration::from_secs(90), "ended", terminal).await
        }
        .await;
        match after {
            Ok(b) if b["builderId"] == "p" && b["status"] == "deployed" => {
                notes.push("after the partition p built the next build".into())
            }
            Ok(b) => violations.push(format!("p did not build after the partition: {b}")),
            Err(e) => violations.push(format!("p did not build after the partition: {e:#}")),
        }
        Ok(Seen {
            violations,
            notes,
            rounds: rounds.len(),
        })
    }

    async fn check(self, _run: &Checked, seen: Seen, verdict: &mut Verdict) -> anyhow::Result<usize> {
        verdict.violations.extend(seen.violations);
        verdict.notes.extend(seen.notes);
        Ok(seen.rounds)
    }
}

/// One round; its violations and a line saying what happened.
async fn play(
    farm: &Farm,
    proxy: &Proxy,
    ledger: &SharedLedger,
    lease: Duration,
    i: usize,
    round: &Round,
) -> anyhow::Result<(Vec<String>, String)> {
    let mut violations = Vec::new();
    // Only p may take the build.
    for n in OTHERS {
        farm.stop_daemon(n).await?;
    }
    let plan = Plan {
        user: "chaos".into(),
        project: format!("part-{i}"),
        requests: vec![Request {
            recipe: Recipe::quick(round.sleep_ms, 4),
            supersede: false,
        }],
    };
    let token = format!("part-{i}-{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    let id = load::submit(
        farm,
        ledger,
        &plan,
        &plan.requests[0],
        &token,
        Instant::now() + Duration::from_secs(60),
    )
    .await
    .context("the round's build was not accepted")?;
    wait_for_build(
        farm,
        &id,
        Duration::from_secs(90),
        "reached its build step",
        |b| latest_event(b) == Some("build_step_started"),
    )
    .await?;
    let step = Instant::now();
    for n in OTHERS {
        farm.start_daemon(n, None)?;
    }
    wait_for_builders(farm, &OTHERS, Duration::from_secs(90)).await?;
    tokio::time::sleep_until(step + round.cut_after).await;

    proxy.blackhole();
    let cut = Instant::now();
    tracing::info!(round = round.name, build = id, "p is cut off from Redis");
    let mut moved_after = None;
    let mut newer = None;
    while cut.elapsed() < lease * 3 {
        if let Ok(b) = farm.build(&id).await {
            if moved_after.is_none() && b["attempts"].as_i64().unwrap_or(0) >= 2 {
                moved_after = Some(cut.elapsed());
            }
            // The newer build goes in once the first one has ended and freed its project.
            if round.newer_meanwhile && newer.is_none() && terminal(&b) {
                let (status, answer) =
                    load::submit_once(farm, ledger, "chaos", &plan.project, &Recipe::quick(0, 3)).await?;
                if status == 202 {
                    newer = answer["buildId"].as_str().map(str::to_owned);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let newer_status = match &newer {
        Some(n) => farm.build(n).await?["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        None => "not admitted".into(),
    };
    proxy.heal();
    let healed = Instant::now();

    let done = wait_for_build(farm, &id, Duration::from_secs(120), "ended", terminal).await?;
    let ended_after_heal = healed.elapsed();
    if let Some(n) = &newer {
        wait_for_build(farm, n, Duration::from_secs(120), "ended", terminal).await?;
    }
    if let Err(e) = wait_for_builders(farm, &["p"], Duration::from_secs(30)).await {
        violations.push(format!(
            "round {}: p did not come back after the heal: {e:#}",
            round.name
        ));
    }
    // Whatever p's attempt started is gone (the grace period has passed by now).
    tokio::time::sleep(Duration::from_secs(farm.options.cancel_grace_secs + 1)).await;
    let left = crate::procs::of_build(&farm.work_dir("p"), &id);
    if !left.is_empty() {
        violations.push(format!(
            "round {}: processes of p's attempt outlived it: {}",
            round.name,
            left.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let builder = done["builderId"].as_str().unwrap_or_default();
    if round.must_move && (builder == "p" || done["lostBuilders"].as_i64().unwrap_or(0) == 0) {
        violations.push(format!(
            "round {}: the build of the cut-off daemon was not taken over: {done}",
            round.name
        ));
    }
    if round.newer_meanwhile && newer_status != "deployed" {
        violations.push(format!(
            "round {}: the newer build was not deployed during the partition ({newer_status}): the \
             round did not test what it should",
            round.name
        ));
    }
    let note = format!(
        "round {}: {} by {builder} (attempts {}, lost builders {}), {}{}; ended {:.1} s after the heal",
        round.name,
        done["status"].as_str().unwrap_or("?"),
        done["attempts"],
        done["lostBuilders"],
        match moved_after {
            Some(t) => format!("taken over {:.1} s into the cut", t.as_secs_f64()),
            None => "not taken over during the cut".into(),
        },
        if round.newer_meanwhile {
            format!("; the newer build of the project during the cut: {newer_status}")
        } else {
            String::new()
        },
        ended_after_heal.as_secs_f64(),
    );
    Ok((violations, note))
}
