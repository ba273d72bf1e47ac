//! Part 2: what the farm adds to a trivial build: submit → `deployed` through one builder, beside
//! the same two pnpm commands run directly in a fresh folder.

use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use crate::farm::{self, Env, Farm, Finished};
use crate::stats::{self, median};
use crate::summary::{Outcome, Summary};

pub const RUNS: usize = 15;
pub const TARGET_MS: f64 = 50.0;
const USER: &str = "bench-user";

/// The build script: writes dist/index.html with node, nothing else.
const BUILD_SCRIPT: &str = "node -e \"require('fs').mkdirSync('dist',{recursive:true});require('fs').writeFileSync('dist/index.html','<h1>x</h1>')\"";

#[derive(Debug, Clone)]
pub struct Report {
    pub farm_ms: Vec<f64>,
    pub direct_ms: Vec<f64>,
    pub direct_install_ms: Vec<f64>,
    pub direct_build_ms: Vec<f64>,
    pub builds: Vec<Finished>,
}

impl Report {
    pub fn farm_median(&self) -> f64 {
        median(&self.farm_ms)
    }

    pub fn direct_median(&self) -> f64 {
        median(&self.direct_ms)
    }

    pub fn overhead(&self) -> f64 {
        self.farm_median() - self.direct_median()
    }

    pub fn pass(&self) -> bool {
        self.overhead() <= TARGET_MS
    }
}

fn package_json() -> String {
    serde_json::to_string_pretty(&json!({
        "name": "kiln-bench-overhead",
        "version": "1.0.0",
        "private": true,
        "scripts": { "build": BUILD_SCRIPT },
    }))
    .expect("a literal serialises")
}

pub fn body(project: &str) -> serde_json::Value {
    json!({
        "userId": USER,
        "projectId": project,
        "files": [{ "path": "package.json", "content": package_json() }],
    })
}

/// One direct run: a fresh folder with the package.json, then the builder's two commands.
async fn direct(env: &Env) -> anyhow::Result<(Duration, Duration)> {
    let (root, project) = farm::direct_folder(env, "direct-overhead-")?;
    std::fs::write(project.join("package.json"), package_json())?;
    farm::install_and_build(env, root.path(), &project, false).await
}

impl Summary for Report {
    fn print(&self) -> Outcome {
        let targets_met = self.pass();
        println!(
    "overhead    farm median {:.0} ms  direct median {:.0} ms  overhead {:.0} ms  target <= {} ms  {}",
    self.farm_median(),
    self.direct_median(),
    self.overhead(),
    TARGET_MS,
    stats::verdict(self.pass())
);
        Outcome::met(targets_met)
    }
}

pub async fn run(env: &Env) -> anyhow::Result<Report> {
    let farm = Farm::start(env, 1).await?;
    let result = measure(env, &farm).await;
    let folder = farm.stop().await;
    tokio::task::spawn_blocking(move || drop(folder)).await?;
    let report = result?;
    print_details(&report);
    Ok(report)
}

async fn measure(env: &Env, farm: &Farm) -> anyhow::Result<Report> {
    // One uncounted run of each side: first process starts, page cache, pnpm's metadata cache.
    farm.build(&body("o-warmup"))
        .await
        .context("the farm's warm-up build")?;
    direct(env).await.context("the direct warm-up run")?;
    let mut r = Report {
        farm_ms: Vec::new(),
        direct_ms: Vec::new(),
        direct_install_ms: Vec::new(),
        direct_build_ms: Vec::new(),
        builds: Vec::new(),
    };
    // Interleaved, so that a slow phase of the machine falls on both sides.
    for i in 0..RUNS {
        let b = farm
            .build(&body(&format!("o{i}")))
            .await
            .with_context(|| format!("farm run {i}"))?;
        let (install, build) = direct(env).await.with_context(|| format!("direct run {i}"))?;
        eprintln!(
            "[bench] overhead run {:>2}/{RUNS}  farm {:>5.0} ms (queue {} install {} build {} upload {} total {})  direct {:>5.0} ms (install {:.0} build {:.0})",
            i + 1,
            stats::ms(b.elapsed),
            fmt_metric(&b, "queueMs"),
            fmt_metric(&b, "installMs"),
            fmt_metric(&b, "buildMs"),
            fmt_metric(&b, "uploadMs"),
            fmt_metric(&b, "totalMs"),
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
    Ok(r)
}

fn fmt_metric(b: &Finished, name: &str) -> String {
    b.metric(name).map_or_else(|| "-".into(), |v| format!("{v:.0}"))
}

/// Median of one of the builds' metrics.
pub fn metric_median(builds: &[Finished], name: &str) -> f64 {
    median(&builds.iter().filter_map(|b| b.metric(name)).collect::<Vec<_>>())
}

/// Where the farm's time goes, from the builds' own metrics and timestamps (medians).
pub fn breakdown(builds: &[Finished], direct_install: &[f64], direct_build: &[f64]) -> Vec<String> {
    let m = |n| metric_median(builds, n);
    let per_build =
        |f: &dyn Fn(&Finished) -> Option<f64>| median(&builds.iter().filter_map(f).collect::<Vec<_>>());
    let ts = |b: &Finished, k: &str| {
        b.view[k]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp_micros() as f64 / 1000.0)
    };
    // Builder time not in install/build/upload: fetch + materialise, workspace create/remove,
    // log upload, recording.
    let other = per_build(&|b| {
        let run = ts(b, "finishedAt")? - ts(b, "startedAt")?;
        Some(run - b.metric("installMs")? - b.metric("buildMs")? - b.metric("uploadMs")?)
    });
    // Submit → created_at (admission before the row) and finished_at → the poll that saw it.
    let outside = per_build(&|b| Some(stats::ms(b.elapsed) - b.metric("totalMs")?));
    vec![
        format!(
            "  POST /v1/builds answer            {:>7.1} ms",
            per_build(&|b| Some(stats::ms(b.submit)))
        ),
        format!("  queueMs   (created → started)     {:>7.1} ms", m("queueMs")),
        format!(
            "  installMs (pnpm install)          {:>7.1} ms   direct {:>7.1} ms",
            m("installMs"),
            median(direct_install)
        ),
        format!(
            "  buildMs   (pnpm run build)        {:>7.1} ms   direct {:>7.1} ms",
            m("buildMs"),
            median(direct_build)
        ),
        format!("  uploadMs  (collect + store output){:>7.1} ms", m("uploadMs")),
        format!(
            "  rest of the build (fetch, workspace, log, record) {:>7.1} ms",
            other
        ),
        format!("  totalMs   (created → deployed)    {:>7.1} ms", m("totalMs")),
        format!("  observed − totalMs (admission + poll lag) {:>7.1} ms", outside),
    ]
}

fn print_details(r: &Report) {
    println!(
        "-- farm overhead: {RUNS} runs a side after one warm-up, one builder, polled every {} ms --",
        farm::POLL_EVERY.as_millis()
    );
    println!("farm   ms [{}]", stats::list(&r.farm_ms, 0));
    println!("direct ms [{}]", stats::list(&r.direct_ms, 0));
    println!("medians of the farm's build metrics:");
    for line in breakdown(&r.builds, &r.direct_install_ms, &r.direct_build_ms) {
        println!("{line}");
    }
}
