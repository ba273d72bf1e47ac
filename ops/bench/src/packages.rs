//! Part `packages`: the first build of examples/vite-react on a builder host with an EMPTY
//! pnpm store whose packages are in the fleet's package cache (a new daemon each run, its own
//! work folder and store), beside a frozen install (store warm) and build run directly; and
//! the same first builds with the registry out of the daemon's reach (its `KILN_EGRESS_ALLOW`
//! names a host that does not exist). A first farm build fills the cache and is not counted.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use kiln_shared::config::{AllowedHost, Egress};
use kiln_shared::domain::{read_tree, FileInput};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::farm::{self, Env, Farm, Finished};
use crate::stats::{self, median};
use crate::summary::{Outcome, Summary};

pub const RUNS: usize = 3;
pub const TARGET_RATIO: f64 = 1.3;
const USER: &str = "bench-user";
const LOCKFILE: &str = "pnpm-lock.yaml";

#[derive(Debug, Clone)]
pub struct Report {
    pub fill_ms: f64,
    pub cached_ms: Vec<f64>,
    pub outage_ms: Vec<f64>,
    pub direct_ms: Vec<f64>,
}

impl Report {
    fn ratio(&self, farm: &[f64]) -> f64 {
        median(farm) / median(&self.direct_ms)
    }
}

impl Summary for Report {
    fn print(&self) -> Outcome {
        let (cached, outage) = (self.ratio(&self.cached_ms), self.ratio(&self.outage_ms));
        let pass = cached <= TARGET_RATIO && outage <= TARGET_RATIO;
        for (what, farm, ratio) in [
            ("fleet cache", &self.cached_ms, cached),
            ("registry down", &self.outage_ms, outage),
        ] {
            println!(
                "empty store, {what:<13}  farm median {:.2} s  direct (warm store) median {:.2} s  ratio {:.2}  target <= {}  {}",
                median(farm) / 1000.0,
                median(&self.direct_ms) / 1000.0,
                ratio,
                TARGET_RATIO,
                stats::verdict(ratio <= TARGET_RATIO)
            );
        }
        Outcome::met(pass)
    }
}

pub async fn run(env: &Env, example: &Path) -> anyhow::Result<Report> {
    let inputs: Vec<FileInput> =
        read_tree(example).with_context(|| format!("reading {}", example.display()))?;
    let farm = Farm::start(env, 0).await?;
    let result = measure(env, &farm, &inputs).await;
    let folder = farm.stop().await;
    tokio::task::spawn_blocking(move || drop(folder)).await?;
    let report = result?;
    println!(
        "-- first builds of examples/vite-react on an empty store: {RUNS} runs a side after one that filled the cache ({:.1} s) --",
        report.fill_ms / 1000.0
    );
    println!("fleet cache   ms [{}]", stats::list(&report.cached_ms, 0));
    println!("registry down ms [{}]", stats::list(&report.outage_ms, 0));
    println!("direct        ms [{}]", stats::list(&report.direct_ms, 0));
    Ok(report)
}

/// One build of a new project on a new daemon with an empty store (in a work folder of its
/// own under the farm's folder), the registry reachable or not.
async fn first_build(
    farm: &Farm,
    name: &str,
    files: &serde_json::Value,
    registry_down: bool,
) -> anyhow::Result<(Finished, String)> {
    let mut settings = farm.settings.clone();
    let work = farm.dir().join(name);
    settings.builder.id = Some(name.to_owned());
    settings.builder.work_dir = work.clone();
    settings.builder.pnpm_store = work.join("pnpm-store");
    if registry_down {
        settings.sandbox.egress = Egress::Allow(vec![AllowedHost {
            host: "registry.outage.invalid".into(),
            port: 443,
        }]);
    }
    let shutdown = CancellationToken::new();
    // Connected before the clock starts, as a host that has been up for a while.
    kiln_builder::Builder::connect(settings.clone())
        .await
        .context("connecting a builder")?;
    let token = shutdown.clone();
    let daemon = tokio::spawn(async move { kiln_builder::run(settings, token).await });
    let body = json!({ "userId": USER, "projectId": name, "files": files });
    let built = farm.build(&body).await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(60), daemon).await;
    let built = built.with_context(|| format!("the build of {name}"))?;
    let log = farm.log(&built.id).unwrap_or_default();
    Ok((built, log))
}

async fn measure(env: &Env, farm: &Farm, inputs: &[FileInput]) -> anyhow::Result<Report> {
    let files = serde_json::to_value(inputs)?;
    let (fill, _) = first_build(farm, "fill", &files, false).await?;
    eprintln!(
        "[bench] packages: the build that filled the cache {:.1} s, not counted",
        fill.elapsed.as_secs_f64()
    );
    let lockfile = farm
        .source_file(USER, "fill", &fill.id, LOCKFILE)
        .await
        .context("the lockfile the farm kept")?;
    let mut with_lockfile = inputs.to_vec();
    with_lockfile.push(serde_json::from_value(json!({
        "path": LOCKFILE,
        "content": String::from_utf8(lockfile.to_vec())?,
    }))?);
    let files = serde_json::to_value(&with_lockfile)?;
    let parsed = kiln_shared::domain::SourceFile::parse_all(inputs, Default::default())
        .context("the example's files")?;
    // One uncounted direct run: the direct store warm, as a host's that built it before.
    direct(env, &parsed, &lockfile).await?;
    let mut r = Report {
        fill_ms: stats::ms(fill.elapsed),
        cached_ms: Vec::new(),
        outage_ms: Vec::new(),
        direct_ms: Vec::new(),
    };
    for k in 1..=RUNS {
        for registry_down in [false, true] {
            let name = format!("first-{k}-{}", if registry_down { "down" } else { "up" });
            let (b, log) = first_build(farm, &name, &files, registry_down).await?;
            let Some(line) = log.lines().find(|l| l.starts_with("[kiln] packages: ")) else {
                bail!("{name}: no package cache line in its log:\n{log}");
            };
            if !line.contains(" 0 from the registry") {
                bail!("{name}: not every package came from the cache: {line}");
            }
            eprintln!(
                "[bench] packages run {k}/{RUNS} {}  farm {:>6.0} ms (install {} build {})  {line}",
                if registry_down {
                    "registry down"
                } else {
                    "registry up  "
                },
                stats::ms(b.elapsed),
                b.metric("installMs").unwrap_or(f64::NAN),
                b.metric("buildMs").unwrap_or(f64::NAN),
            );
            if registry_down {
                r.outage_ms.push(stats::ms(b.elapsed));
            } else {
                r.cached_ms.push(stats::ms(b.elapsed));
            }
        }
        let (install, build) = direct(env, &parsed, &lockfile).await?;
        eprintln!(
            "[bench] packages run {k}/{RUNS} direct {:>6.0} ms (install {:.0} build {:.0})",
            stats::ms(install + build),
            stats::ms(install),
            stats::ms(build)
        );
        r.direct_ms.push(stats::ms(install + build));
    }
    Ok(r)
}

/// The example and its lockfile in a fresh folder: a frozen install (the direct store warm)
/// and the build.
async fn direct(
    env: &Env,
    files: &[kiln_shared::domain::SourceFile],
    lockfile: &[u8],
) -> anyhow::Result<(Duration, Duration)> {
    let (root, project) = farm::direct_folder(env, "direct-packages-")?;
    for f in files {
        let target = project.join(f.path.as_str());
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, &f.content)?;
    }
    std::fs::write(project.join(LOCKFILE), lockfile)?;
    let times = farm::install_and_build(env, root.path(), &project, true).await?;
    tokio::task::spawn_blocking(move || drop(root)).await?;
    Ok(times)
}
