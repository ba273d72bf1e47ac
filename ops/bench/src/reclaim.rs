//! Part 8: reclaim time after `kill -9`: from the kill of a daemon process running a build to
//! another daemon starting that build again (its first build process, as the pnpm shim of
//! [`crate::starts`] records it), with `KILN_LEASE_SECS` = [`LEASE_SECS`].
//!
//! Two daemons (processes). A build whose build step sleeps is submitted; once its build step
//! runs, the benchmark waits for the owner's next renewal of the claim (the stream entry's idle
//! time drops to ~0 in `XPENDING`) and kills the owner with SIGKILL right after it: the worst
//! moment to die, since the lease then runs for all of its length. Successive kills are
//! shifted by a fifth of a second, so that they meet the other daemon's once-a-second look for
//! lost builds at spread-out points of its cycle. The build's orphaned
//! processes are killed too (a dead machine takes them along). The figure is kill → the other
//! daemon's first process of the build's next attempt; the rest of the build is cancelled and
//! a fresh daemon replaces the dead one before the next kill.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use crate::daemons::{self, Daemon, Launcher};
use crate::farm::{Env, Farm, TOKEN};
use crate::starts::{self, now_ns, Shim, Start};
use crate::stats::{self, median, percentile};
use crate::summary::{Outcome, Summary};

/// The shortest lease that renews once a second (renewals come every third of it).
pub const LEASE_SECS: u64 = 3;
pub const KILLS: usize = 5;
pub const ROUNDS: usize = 3;
/// Target: reclaim within the lease plus this.
pub const TARGET_EXTRA_S: f64 = 1.0;
const USER: &str = "bench-user";
/// The shift of each kill within the reclaiming daemon's 1-s read cycle (1 s / KILLS).
const SWEEP: Duration = Duration::from_millis(1000 / KILLS as u64);

/// A build whose build step runs for a minute (it is cancelled long before).
fn slow_body(project: &str) -> Value {
    let package =
        json!({ "name": "kiln-bench-reclaim", "private": true, "scripts": { "build": "sleep 60" } });
    json!({
        "userId": USER,
        "projectId": project,
        "files": [
            { "path": "package.json", "content": package.to_string() },
            { "path": "public/index.html", "content": "<h1>reclaim</h1>" },
        ],
    })
}

/// One kill, in ms.
#[derive(Debug, Clone)]
pub struct Sample {
    /// kill → the build's first process on the other daemon.
    pub restarted: f64,
    /// kill → the other daemon marked it running again (its row's `started_at`).
    pub taken_over: f64,
    /// The entry's idle time when the owner was killed (time since its last renewal).
    pub idle_at_kill: f64,
}

impl Sample {
    /// The lease's end (last renewal + lease) → restarted.
    pub fn after_expiry(&self) -> f64 {
        self.restarted - (LEASE_SECS as f64 * 1000.0 - self.idle_at_kill)
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub runs: Vec<Vec<Sample>>,
}

impl Report {
    fn per_run(&self, f: impl Fn(&[Sample]) -> f64) -> f64 {
        median(&self.runs.iter().map(|r| f(r)).collect::<Vec<_>>())
    }

    /// Median of the runs' medians of kill → restarted, in s.
    pub fn median_s(&self) -> f64 {
        self.per_run(|r| median(&r.iter().map(|s| s.restarted).collect::<Vec<_>>())) / 1000.0
    }

    /// Median of the runs' p99 (with 5 kills a run: their slowest), in s.
    pub fn p99_s(&self) -> f64 {
        self.per_run(|r| percentile(&r.iter().map(|s| s.restarted).collect::<Vec<_>>(), 99.0)) / 1000.0
    }

    pub fn pass(&self) -> bool {
        self.p99_s() <= LEASE_SECS as f64 + TARGET_EXTRA_S
    }
}

impl Summary for Report {
    fn print(&self) -> Outcome {
        let targets_met = self.pass();
        let lease = LEASE_SECS as f64;
        println!(
    "reclaim     kill -9 -> build restarted elsewhere  median lease + {:.2} s  p99 lease + {:.2} s  (lease {} s)  target lease + <= {:.0} s  {}",
    self.median_s() - lease,
    self.p99_s() - lease,
    LEASE_SECS,
    TARGET_EXTRA_S,
    stats::verdict(self.pass())
);
        Outcome::met(targets_met)
    }
}

pub async fn run(env: &Env) -> anyhow::Result<Report> {
    let mut runs = Vec::new();
    for round in 1..=ROUNDS {
        let samples = one_run(env, round)
            .await
            .with_context(|| format!("reclaim, run {round}"))?;
        runs.push(samples);
    }
    let report = Report { runs };
    print_details(&report);
    Ok(report)
}

fn print_details(r: &Report) {
    println!(
        "-- reclaim: KILN_LEASE_SECS={LEASE_SECS} (renewed every {} ms), 2 daemons, {KILLS} kill -9 a run right after a renewal, {ROUNDS} runs --",
        LEASE_SECS * 1000 / 3
    );
    let all: Vec<&Sample> = r.runs.iter().flatten().collect();
    let list = |f: fn(&Sample) -> f64| {
        all.iter()
            .map(|s| format!("{:.0}", f(s)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("kill -> restarted ms [{}]", list(|s| s.restarted));
    println!(
        "kill -> taken over (row running again) ms [{}]",
        list(|s| s.taken_over)
    );
    println!("idle at the kill ms [{}]", list(|s| s.idle_at_kill));
    println!(
        "lease end -> restarted ms [{}]  (the reclaiming daemon looks every ~0.5 s: XAUTOCLAIM, then XREADGROUP BLOCK 500)",
        list(Sample::after_expiry)
    );
}

async fn one_run(env: &Env, round: usize) -> anyhow::Result<Vec<Sample>> {
    let farm = Farm::start(env, 0).await?;
    let result = async {
        let shim = Shim::new()?;
        let launcher = Launcher::new(
            &farm,
            &shim,
            &[
                ("KILN_LEASE_SECS", LEASE_SECS.to_string()),
                ("KILN_CANCEL_GRACE_SECS", "1".to_owned()),
            ],
        )?;
        let ids = vec![format!("reclaim-{round}-0"), format!("reclaim-{round}-1")];
        let mut fleet = daemons::start_all(&farm, &launcher, &ids).await?;
        let measured = kills(&farm, &shim, &launcher, &mut fleet, round).await;
        daemons::stop_all(fleet).await;
        measured
    }
    .await;
    let folder = farm.stop().await;
    tokio::task::spawn_blocking(move || drop(folder)).await?;
    result
}

async fn kills(
    farm: &Farm,
    shim: &Shim,
    launcher: &Launcher,
    fleet: &mut Vec<Daemon>,
    round: usize,
) -> anyhow::Result<Vec<Sample>> {
    use secrecy::ExposeSecret;
    let redis = redis::Client::open(farm.settings.redis.url.expose_secret())?;
    let mut conn = redis.get_multiplexed_async_connection().await?;
    let stream = kiln_shared::redis::Keys::new(farm.settings.redis.prefix.clone()).stream();
    let mut samples = Vec::new();
    for k in 0..KILLS {
        // The reclaiming daemon looks for lost builds once per ~1 s read cycle, whose phase is
        // otherwise set by the steps of this loop: the k-th kill comes k/KILLS of a cycle later,
        // so that the kills of a run fall at evenly spread points of that cycle.
        tokio::time::sleep(SWEEP * k as u32).await;
        let submitted = now_ns();
        let id = farm
            .submit(Bytes::from(slow_body(&format!("r{round}-{k}")).to_string()))
            .await?;
        wait_start(shim, &id, submitted, |s| s.is_build_step(), None).await?;
        let view = farm.get_build(&id).await?;
        let owner_id = view["builderId"]
            .as_str()
            .context("a running build has a builder")?;
        let owner = fleet
            .iter()
            .position(|d| d.id == owner_id)
            .with_context(|| format!("build {id} runs on {owner_id}, not one of the daemons"))?;
        let idle_at_kill = wait_renewal(&mut conn, &stream, owner_id).await?;
        let killed_ns = now_ns();
        fleet[owner].kill9().await?;
        let dead = fleet.remove(owner);
        kill_orphans(shim, &id, &dead)?;
        let survivor = fleet[0].work.clone();
        let again = wait_start(shim, &id, killed_ns, Start::is_install, Some(&survivor)).await?;
        let view = farm.get_build(&id).await?;
        if view["attempts"] != 2 || view["lostBuilders"] != 1 {
            bail!(
                "after the kill build {id} reads attempts {} lostBuilders {}",
                view["attempts"],
                view["lostBuilders"]
            );
        }
        let taken_over = view["startedAt"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| starts::ns_of(t.to_utc()))
            .context("a taken-over build has a startedAt")?;
        let sample = Sample {
            restarted: (again.at_ns - killed_ns) as f64 / 1e6,
            taken_over: (taken_over - killed_ns) as f64 / 1e6,
            idle_at_kill,
        };
        eprintln!(
            "[bench] reclaim run {round}/{ROUNDS} kill {}/{KILLS}  kill -> restarted {:>6.0} ms (lease + {:>4.0} ms)  taken over at {:>6.0} ms  idle at the kill {:>3.0} ms  lease end -> restarted {:>4.0} ms",
            k + 1,
            sample.restarted,
            sample.restarted - LEASE_SECS as f64 * 1000.0,
            sample.taken_over,
            sample.idle_at_kill,
            sample.after_expiry()
        );
        samples.push(sample);
        cancel(farm, &id).await?;
        wait_empty(farm).await?;
        let replacement = format!("reclaim-{round}-{}", k + 2);
        fleet.push(launcher.spawn(&replacement)?);
        daemons::wait_live(farm, &[replacement.as_str()]).await?;
    }
    Ok(samples)
}

/// Waits for the shim's record of a process of build `id` that `which` accepts, started after
/// `after_ns` (in the work dir `under`, when given).
async fn wait_start(
    shim: &Shim,
    id: &str,
    after_ns: i128,
    which: fn(&Start) -> bool,
    under: Option<&std::path::Path>,
) -> anyhow::Result<Start> {
    let started = Instant::now();
    loop {
        let found = shim
            .starts()?
            .into_iter()
            .filter(|s| s.build() == Some(id) && s.at_ns >= after_ns && which(s))
            .find(|s| under.is_none_or(|dir| s.cwd.starts_with(dir)));
        if let Some(s) = found {
            return Ok(s);
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("build {id}: the awaited process did not start within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `owner` has just renewed its claim (its pending entry idle for under 15 ms);
/// returns the idle time then, in ms.
async fn wait_renewal(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
    owner: &str,
) -> anyhow::Result<f64> {
    use redis::AsyncCommands;
    let started = Instant::now();
    loop {
        let pending: redis::streams::StreamPendingCountReply = conn
            .xpending_count(stream, kiln_shared::redis::CONSUMER_GROUP, "-", "+", 10)
            .await?;
        let idle = pending
            .ids
            .iter()
            .find(|e| e.consumer == owner)
            .map(|e| e.last_delivered_ms as f64)
            .with_context(|| format!("no pending entry of {owner}"))?;
        if idle < 15.0 {
            return Ok(idle);
        }
        if started.elapsed() > Duration::from_secs(LEASE_SECS * 2) {
            bail!("{owner} did not renew its claim within {} s", LEASE_SECS * 2);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The dead daemon's build processes live on (each in a process group of its own): SIGKILL to
/// each group the shim saw start in its work dir, if its leader still runs there.
fn kill_orphans(shim: &Shim, id: &str, dead: &Daemon) -> anyhow::Result<()> {
    for s in shim.starts()? {
        if s.build() != Some(id) || !s.cwd.starts_with(&dead.work) {
            continue;
        }
        let cwd = std::fs::read_link(format!("/proc/{}/cwd", s.pid));
        if cwd.is_ok_and(|c| c.starts_with(&dead.work)) {
            let _ = killpg(Pid::from_raw(s.pid), Signal::SIGKILL);
        }
    }
    Ok(())
}

async fn cancel(farm: &Farm, id: &str) -> anyhow::Result<()> {
    let res = farm
        .client
        .post(format!("{}/v1/builds/{id}/cancel", farm.api))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    if res.status() != 200 {
        bail!(
            "cancelling {id}: {} {}",
            res.status(),
            res.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// Waits until the stream is empty (the cancelled build acknowledged by its daemon).
async fn wait_empty(farm: &Farm) -> anyhow::Result<()> {
    let started = Instant::now();
    while farm.queue_depth().await? > 0 {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the cancelled build was not acknowledged within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
