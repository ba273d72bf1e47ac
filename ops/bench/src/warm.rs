//! Part 3: warm rebuilds of examples/vite-react: a one-file change through the farm (the
//! project's warm dependency tree on the builder, else a frozen install on the lockfile the farm
//! kept), beside a frozen install + build run directly; first builds of new projects carrying
//! that lockfile (the builder never built them; its store holds the packages) beside the same
//! run directly; and cold first builds (a new project, no lockfile, the store warm) beside the
//! same run directly.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use kiln_shared::domain::{read_tree, FileInput, SourceFile};
use serde_json::json;

use crate::farm::{self, Env, Farm, Finished};
use crate::stats::{self, median};
use crate::summary::{Outcome, Summary};

pub const RUNS: usize = 7;
pub const TARGET_RATIO: f64 = 0.7;
/// First builds of new projects with the lockfile, a side.
pub const FRESH_RUNS: usize = 5;
pub const TARGET_FRESH_RATIO: f64 = 0.95;
/// Cold first builds a side.
pub const COLD_RUNS: usize = 5;
pub const TARGET_COLD_RATIO: f64 = 1.1;
const USER: &str = "bench-user";
const PROJECT: &str = "vite-react";
const APP: &str = "src/App.tsx";
const LOCKFILE: &str = "pnpm-lock.yaml";
const ANCHOR: &str = "Pick a time and we will see you soon.";

#[derive(Debug, Clone)]
pub struct Report {
    pub cold_ms: f64,
    pub farm_ms: Vec<f64>,
    pub direct_ms: Vec<f64>,
    pub direct_install_ms: Vec<f64>,
    pub direct_build_ms: Vec<f64>,
    pub builds: Vec<Finished>,
    pub cold_farm_ms: Vec<f64>,
    pub cold_direct_ms: Vec<f64>,
    /// How the farm's rebuilds got their dependencies: installs skipped (a warm tree), frozen
    /// installs.
    pub skipped: usize,
    pub frozen: usize,
    pub fresh_farm_ms: Vec<f64>,
    pub fresh_direct_ms: Vec<f64>,
}

impl Report {
    pub fn cold_ratio(&self) -> f64 {
        median(&self.cold_farm_ms) / median(&self.cold_direct_ms)
    }

    pub fn cold_pass(&self) -> bool {
        self.cold_ratio() <= TARGET_COLD_RATIO
    }

    pub fn fresh_ratio(&self) -> f64 {
        median(&self.fresh_farm_ms) / median(&self.fresh_direct_ms)
    }

    pub fn fresh_pass(&self) -> bool {
        self.fresh_ratio() <= TARGET_FRESH_RATIO
    }

    pub fn farm_median(&self) -> f64 {
        median(&self.farm_ms)
    }

    pub fn direct_median(&self) -> f64 {
        median(&self.direct_ms)
    }

    pub fn ratio(&self) -> f64 {
        self.farm_median() / self.direct_median()
    }

    pub fn pass(&self) -> bool {
        self.ratio() <= TARGET_RATIO
    }
}

/// The k-th slight change of App.tsx (k = 0 is the direct warm-up's).
fn edited_app(original: &str, k: usize) -> anyhow::Result<String> {
    if !original.contains(ANCHOR) {
        bail!("{APP} of the example no longer contains {ANCHOR:?}; update ops/bench/src/warm.rs");
    }
    Ok(original.replace(
        ANCHOR,
        &format!("Pick a time and we will see you soon (edit {k})."),
    ))
}

/// One direct run: the project with the k-th App.tsx and the farm's lockfile in a fresh folder,
/// then a frozen install and the build.
async fn direct(
    env: &Env,
    files: &[SourceFile],
    app: &str,
    lockfile: Option<&[u8]>,
) -> anyhow::Result<(Duration, Duration)> {
    let (root, project) = farm::direct_folder(env, "direct-warm-")?;
    for f in files {
        let target = project.join(f.path.as_str());
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let content = if f.path.as_str() == APP {
            app.as_bytes()
        } else {
            &f.content
        };
        std::fs::write(target, content)?;
    }
    if let Some(lockfile) = lockfile {
        std::fs::write(project.join(LOCKFILE), lockfile)?;
    }
    let (install, build) = farm::install_and_build(env, root.path(), &project, lockfile.is_some()).await?;
    // Removing node_modules is not timed on this side.
    tokio::task::spawn_blocking(move || drop(root)).await?;
    Ok((install, build))
}

impl Summary for Report {
    fn print(&self) -> Outcome {
        let targets_met = self.pass() && self.cold_pass() && self.fresh_pass();
        println!(
            "warm build  farm median {:.2} s  direct median {:.2} s  ratio {:.2}  target <= {}  {}  ({} installs skipped, {} frozen)",
            self.farm_median() / 1000.0,
            self.direct_median() / 1000.0,
            self.ratio(),
            TARGET_RATIO,
            stats::verdict(self.pass()),
            self.skipped,
            self.frozen
        );
        println!(
            "new project, known lockfile  farm median {:.2} s  direct median {:.2} s  ratio {:.2}  target <= {}  {}",
            stats::median(&self.fresh_farm_ms) / 1000.0,
            stats::median(&self.fresh_direct_ms) / 1000.0,
            self.fresh_ratio(),
            TARGET_FRESH_RATIO,
            stats::verdict(self.fresh_pass())
        );
        println!(
            "cold build  farm median {:.2} s  direct median {:.2} s  ratio {:.2}  target <= {}  {}",
            stats::median(&self.cold_farm_ms) / 1000.0,
            stats::median(&self.cold_direct_ms) / 1000.0,
            self.cold_ratio(),
            TARGET_COLD_RATIO,
            stats::verdict(self.cold_pass())
        );
        Outcome::met(targets_met)
    }
}

pub async fn run(env: &Env, example: &Path) -> anyhow::Result<Report> {
    let inputs: Vec<FileInput> =
        read_tree(example).with_context(|| format!("reading {}", example.display()))?;
    let files = SourceFile::parse_all(&inputs, Default::default()).context("the example's files")?;
    let original = files
        .iter()
        .find(|f| f.path.as_str() == APP)
        .map(|f| String::from_utf8_lossy(&f.content).into_owned())
        .with_context(|| format!("{} has no {APP}", example.display()))?;
    let farm = Farm::start(env, 1).await?;
    let result = measure(env, &farm, &inputs, &files, &original).await;
    let folder = farm.stop().await;
    tokio::task::spawn_blocking(move || drop(folder)).await?;
    let report = result?;
    print_details(&report);
    Ok(report)
}

async fn measure(
    env: &Env,
    farm: &Farm,
    inputs: &[FileInput],
    files: &[SourceFile],
    original: &str,
) -> anyhow::Result<Report> {
    let cold = farm
        .build(&json!({ "userId": USER, "projectId": PROJECT, "files": inputs }))
        .await
        .context("the cold build")?;
    eprintln!(
        "[bench] warm: cold build {:.1} s (install {} ms, build {} ms), not counted",
        cold.elapsed.as_secs_f64(),
        cold.metric("installMs").unwrap_or(f64::NAN),
        cold.metric("buildMs").unwrap_or(f64::NAN)
    );
    let lockfile = farm
        .source_file(USER, PROJECT, &cold.id, LOCKFILE)
        .await
        .context("the lockfile the farm kept with the cold build")?;
    // One uncounted direct run, as the farm had its cold build.
    direct(env, files, &edited_app(original, 0)?, Some(&lockfile))
        .await
        .context("the direct warm-up run")?;

    let mut r = Report {
        cold_ms: stats::ms(cold.elapsed),
        farm_ms: Vec::new(),
        direct_ms: Vec::new(),
        direct_install_ms: Vec::new(),
        direct_build_ms: Vec::new(),
        builds: Vec::new(),
        cold_farm_ms: Vec::new(),
        cold_direct_ms: Vec::new(),
        skipped: 0,
        frozen: 0,
        fresh_farm_ms: Vec::new(),
        fresh_direct_ms: Vec::new(),
    };
    for k in 1..=RUNS {
        let app = edited_app(original, k)?;
        let body = json!({
            "userId": USER,
            "projectId": PROJECT,
            "files": [{ "path": APP, "content": app }],
        });
        let b = farm
            .build(&body)
            .await
            .with_context(|| format!("farm rebuild {k}"))?;
        let log = farm.log(&b.id).unwrap_or_default();
        if log.contains("[kiln] dependencies: install skipped") {
            r.skipped += 1;
        } else if log.contains("--frozen-lockfile") {
            r.frozen += 1;
        } else {
            bail!(
                "farm rebuild {k} ({}) neither skipped the install nor installed with --frozen-lockfile; its log:\n{log}",
                b.id
            );
        }
        let (install, build) = direct(env, files, &app, Some(&lockfile))
            .await
            .with_context(|| format!("direct run {k}"))?;
        eprintln!(
            "[bench] warm run {k}/{RUNS}  farm {:>6.0} ms (queue {} install {} build {} upload {} total {})  direct {:>6.0} ms (install {:.0} build {:.0})",
            stats::ms(b.elapsed),
            b.metric("queueMs").unwrap_or(f64::NAN),
            b.metric("installMs").unwrap_or(f64::NAN),
            b.metric("buildMs").unwrap_or(f64::NAN),
            b.metric("uploadMs").unwrap_or(f64::NAN),
            b.metric("totalMs").unwrap_or(f64::NAN),
            stats::ms(install + build),
            stats::ms(install),
            stats::ms(build),
        );
        r.farm_ms.push(stats::ms(b.elapsed));
        r.direct_ms.push(stats::ms(install + build));
        r.direct_install_ms.push(stats::ms(install));
        r.direct_build_ms.push(stats::ms(build));
        r.builds.push(b);
    }
    // First builds of new projects that carry the kept lockfile: the builder never built them
    // (no tree of theirs), its store holds every package; beside the same frozen install and
    // build run directly.
    for k in 1..=FRESH_RUNS {
        let app = edited_app(original, 200 + k)?;
        let mut inputs = inputs.to_vec();
        for input in &mut inputs {
            if input.path == APP {
                input.content = app.clone();
            }
        }
        inputs.push(serde_json::from_value(json!({
            "path": LOCKFILE,
            "content": String::from_utf8(lockfile.to_vec()).context("the lockfile is text")?,
        }))?);
        let b = farm
            .build(&json!({ "userId": USER, "projectId": format!("{PROJECT}-fresh-{k}"), "files": inputs }))
            .await
            .with_context(|| format!("farm first build {k} with the lockfile"))?;
        let (install, build) = direct(env, files, &app, Some(&lockfile))
            .await
            .with_context(|| format!("direct run {k} with the lockfile"))?;
        eprintln!(
            "[bench] new project with the lockfile {k}/{FRESH_RUNS}  farm {:>6.0} ms (install {} build {})  direct {:>6.0} ms (install {:.0} build {:.0})",
            stats::ms(b.elapsed),
            b.metric("installMs").unwrap_or(f64::NAN),
            b.metric("buildMs").unwrap_or(f64::NAN),
            stats::ms(install + build),
            stats::ms(install),
            stats::ms(build),
        );
        r.fresh_farm_ms.push(stats::ms(b.elapsed));
        r.fresh_direct_ms.push(stats::ms(install + build));
    }
    // Cold first builds: a project the farm never built (no lockfile kept, no dependency tree),
    // the store warm, beside the same first install and build run directly.
    for k in 1..=COLD_RUNS {
        let app = edited_app(original, 100 + k)?;
        let mut inputs = inputs.to_vec();
        for input in &mut inputs {
            if input.path == APP {
                input.content = app.clone();
            }
        }
        let b = farm
            .build(&json!({ "userId": USER, "projectId": format!("{PROJECT}-cold-{k}"), "files": inputs }))
            .await
            .with_context(|| format!("farm cold build {k}"))?;
        let (install, build) = direct(env, files, &app, None)
            .await
            .with_context(|| format!("direct cold run {k}"))?;
        eprintln!(
            "[bench] cold run {k}/{COLD_RUNS}  farm {:>6.0} ms (install {} build {})  direct {:>6.0} ms (install {:.0} build {:.0})",
            stats::ms(b.elapsed),
            b.metric("installMs").unwrap_or(f64::NAN),
            b.metric("buildMs").unwrap_or(f64::NAN),
            stats::ms(install + build),
            stats::ms(install),
            stats::ms(build),
        );
        r.cold_farm_ms.push(stats::ms(b.elapsed));
        r.cold_direct_ms.push(stats::ms(install + build));
    }
    Ok(r)
}

fn print_details(r: &Report) {
    println!(
        "-- warm rebuild of examples/vite-react: {RUNS} runs a side after a cold farm build ({:.1} s) and one direct warm-up --",
        r.cold_ms / 1000.0
    );
    println!("farm   ms [{}]", stats::list(&r.farm_ms, 0));
    println!("direct ms [{}]", stats::list(&r.direct_ms, 0));
    println!("medians of the farm's build metrics:");
    for line in crate::overhead::breakdown(&r.builds, &r.direct_install_ms, &r.direct_build_ms) {
        println!("{line}");
    }
    println!("-- first builds of new projects with the kept lockfile (the store warm): {FRESH_RUNS} runs a side --");
    println!("farm   ms [{}]", stats::list(&r.fresh_farm_ms, 0));
    println!("direct ms [{}]", stats::list(&r.fresh_direct_ms, 0));
    println!(
        "-- cold first builds (a new project each, no lockfile, the store warm): {COLD_RUNS} runs a side --"
    );
    println!("farm   ms [{}]", stats::list(&r.cold_farm_ms, 0));
    println!("direct ms [{}]", stats::list(&r.cold_direct_ms, 0));
}
