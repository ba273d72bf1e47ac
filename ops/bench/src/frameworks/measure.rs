//! One project of the framework matrix measured: its cold builds (a fresh farm whose pnpm store
//! and metadata cache are empty, beside a direct install and build with an empty store of its
//! own), then its warm builds (the same project rebuilt by that farm, its store warm, beside
//! the same commands run directly with the direct store warm), alternating.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use kiln_shared::domain::{read_tree, FileInput, SourceFile};
use serde_json::{json, Value};

use super::projects::{Expect, Project};
use crate::farm::{self, Env, Farm};
use crate::stats;

const USER: &str = "bench-user";
/// A file each run adds at the project's root (no framework here publishes or reads a `.txt`
/// at the root), so that every build of a project is a new version with new sources.
const RUN_FILE: &str = "kiln-bench-run.txt";
const LOCKFILE: &str = "pnpm-lock.yaml";
/// Lines of a failed build's log kept for the details.
pub const LOG_TAIL: usize = 40;
/// The build limits a run may set for the matrix's farms (their defaults otherwise).
pub const LIMITS: &[&str] = &[
    "KILN_BUILD_MEMORY_MB",
    "KILN_BUILD_CPU_SECS",
    "KILN_BUILD_TIMEOUT_SECS",
];

/// What the farm made of one build.
#[derive(Debug, Clone)]
pub struct FarmRun {
    pub ms: f64,
    /// `deployed` or `failed`.
    pub status: String,
    pub failed_step: Option<String>,
    pub error: Option<String>,
    /// The framework the builder detected, and the output folder it recorded (when the API
    /// shows them).
    pub framework: Option<String>,
    pub output_dir: Option<String>,
    /// Deployed: why the preview's `/` is not the project's page, if it is not.
    pub preview_problem: Option<String>,
    pub install_ms: Option<f64>,
    pub build_ms: Option<f64>,
    /// Failed: the last lines of the build's log (the farm's folder goes with the project).
    pub log_tail: Option<String>,
}

/// One project's figures; a side that could not be measured says why.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub farm_cold: Vec<FarmRun>,
    pub farm_warm: Vec<FarmRun>,
    pub direct_cold_ms: Vec<f64>,
    pub direct_warm_ms: Vec<f64>,
    /// The first error of a direct run (its side stops there).
    pub direct_error: Option<String>,
    /// Why the project could not be measured at all (its folder is missing, a farm would not
    /// start).
    pub error: Option<String>,
}

/// The project's files as sent, with the run's `label` in [`RUN_FILE`].
fn with_run_file(files: &[FileInput], label: &str) -> Vec<FileInput> {
    let mut files = files.to_vec();
    files.push(FileInput::text(RUN_FILE, format!("{label}\n")));
    files
}

pub async fn measure(
    env: &Env,
    project: &Project,
    dir: &Path,
    cold_runs: usize,
    warm_runs: usize,
) -> Measured {
    let mut m = Measured::default();
    if let Err(e) = measure_into(env, project, dir, cold_runs, warm_runs, &mut m).await {
        m.error = Some(format!("{e:#}"));
    }
    m
}

async fn measure_into(
    env: &Env,
    p: &Project,
    dir: &Path,
    cold_runs: usize,
    warm_runs: usize,
    m: &mut Measured,
) -> anyhow::Result<()> {
    let files = read_tree(dir).with_context(|| format!("reading {}", dir.display()))?;
    let frozen = files.iter().any(|f| f.path == LOCKFILE);
    for k in 1..=cold_runs {
        // A folder of its own per cold run: the farm's work folder (its pnpm store and the
        // store's metadata cache inside, as a builder host keeps them) and the direct store.
        let scratch = tempfile::Builder::new()
            .prefix(&format!("fw-{}-", p.name))
            .tempdir_in(&env.tmp)?;
        std::fs::set_permissions(
            scratch.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )?;
        let work = scratch.path().join("work");
        let store = work.join("pnpm-store");
        let mut vars = vec![
            ("KILN_WORK_DIR", work.display().to_string()),
            ("KILN_PNPM_STORE", store.display().to_string()),
        ];
        // A build's limits, when the run sets them (the farm takes nothing else from the
        // environment): to see whether a project that passes one builds otherwise.
        vars.extend(LIMITS.iter().filter_map(|k| Some((*k, std::env::var(k).ok()?))));
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let farm = Farm::start_with(env, 1, &vars).await.context("starting a farm")?;
        let project_id = format!("fw-{}-{k}", p.name);
        let direct_store = scratch.path().join("direct-store");
        let result = async {
            let cold = farm_build(
                &farm,
                p,
                &project_id,
                &with_run_file(&files, &format!("cold {k}")),
            )
            .await?;
            log_farm(p, &format!("cold {k}/{cold_runs}"), &cold);
            let stop_farm = cold.status != "deployed" && !refused_as_planned(p, &cold);
            m.farm_cold.push(cold);
            direct_side(
                env,
                &files,
                frozen,
                &direct_store,
                &format!("cold {k}"),
                &mut m.direct_cold_ms,
                &mut m.direct_error,
            )
            .await;
            if k < cold_runs {
                return anyhow::Ok(());
            }
            // Warm: the same project again on this farm, the direct store as warm.
            for w in 1..=warm_runs {
                if !stop_farm {
                    let run = farm_build(
                        &farm,
                        p,
                        &project_id,
                        &with_run_file(&files, &format!("warm {w}")),
                    )
                    .await?;
                    log_farm(p, &format!("warm {w}/{warm_runs}"), &run);
                    m.farm_warm.push(run);
                }
                direct_side(
                    env,
                    &files,
                    frozen,
                    &direct_store,
                    &format!("warm {w}"),
                    &mut m.direct_warm_ms,
                    &mut m.direct_error,
                )
                .await;
            }
            Ok(())
        }
        .await;
        let folder = farm.stop().await;
        tokio::task::spawn_blocking(move || {
            drop(folder);
            drop(scratch);
        })
        .await?;
        result?;
    }
    Ok(())
}

/// Whether a farm run failed the way the project is meant to.
pub fn refused_as_planned(p: &Project, run: &FarmRun) -> bool {
    match p.expect {
        Expect::Refuse(words) => {
            run.status == "failed"
                && run.failed_step.as_deref() == Some("output")
                && run.error.as_deref().is_some_and(|e| e.contains(words))
        }
        Expect::Deploy(_) => false,
    }
}

fn log_farm(p: &Project, what: &str, r: &FarmRun) {
    let outcome = match r.status.as_str() {
        "deployed" => format!("deployed {}", r.output_dir.as_deref().unwrap_or("?")),
        _ => format!(
            "failed at {}: {}",
            r.failed_step.as_deref().unwrap_or("?"),
            first_line(r.error.as_deref().unwrap_or(""))
        ),
    };
    eprintln!(
        "[bench] frameworks {:<17} farm {what:<9} {:>8.0} ms (install {} build {})  {outcome}",
        p.name,
        r.ms,
        r.install_ms.map_or_else(|| "-".into(), |v| format!("{v:.0}")),
        r.build_ms.map_or_else(|| "-".into(), |v| format!("{v:.0}")),
    );
}

pub fn first_line(s: &str) -> &str {
    s.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
}

/// One build through the farm, deployed or failed; a deployed one's preview is fetched at `/`.
async fn farm_build(
    farm: &Farm,
    p: &Project,
    project_id: &str,
    files: &[FileInput],
) -> anyhow::Result<FarmRun> {
    let body = json!({ "userId": USER, "projectId": project_id, "files": files });
    let body = Bytes::from(serde_json::to_vec(&body)?);
    let started = Instant::now();
    let id = farm.submit(body).await?;
    let submit = started.elapsed();
    let done = farm.wait_done(id, started, submit).await?;
    let v = &done.view;
    let text = |k: &str| v[k].as_str().map(str::to_owned);
    let mut run = FarmRun {
        ms: stats::ms(done.elapsed),
        status: text("status").unwrap_or_default(),
        failed_step: text("failedStep"),
        error: text("error"),
        framework: text("framework"),
        output_dir: text("outputDir"),
        preview_problem: None,
        install_ms: done.metric("installMs"),
        build_ms: done.metric("buildMs"),
        log_tail: None,
    };
    if run.status == "failed" {
        run.log_tail = farm.log(&done.id).map(|log| {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
        });
    }
    if run.status == "deployed" {
        run.preview_problem = preview_problem(farm, v, p.marker)
            .await
            .err()
            .map(|e| format!("{e:#}"));
    }
    Ok(run)
}

/// Checks that the deployed version's preview answers `/` with an HTML page (holding the
/// project's marker, when it has one).
async fn preview_problem(farm: &Farm, view: &Value, marker: Option<&str>) -> anyhow::Result<()> {
    let url = view["previewUrl"]
        .as_str()
        .context("a deployed build has a previewUrl")?;
    let label = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .and_then(|u| u.split('.').next())
        .context("a preview URL has a label")?;
    let port = farm.settings.preview.public_port.context("the preview port")?;
    let res = farm
        .client
        .get(format!("http://127.0.0.1:{port}/"))
        .header("Host", format!("{label}.localhost"))
        .send()
        .await?;
    let status = res.status();
    let page = res.text().await?;
    anyhow::ensure!(status == 200, "the preview answered {status} at /");
    anyhow::ensure!(
        page.to_ascii_lowercase().contains("<html") || page.to_ascii_lowercase().contains("<!doctype html"),
        "the preview's / is not an HTML page"
    );
    if let Some(marker) = marker {
        anyhow::ensure!(
            page.contains(marker),
            "the preview's / does not contain {marker:?}"
        );
    }
    Ok(())
}

/// One direct run (`pnpm install` + `pnpm run build` in a fresh copy, with `store`), its time
/// pushed to `into`; once one failed, the side is not run again.
async fn direct_side(
    env: &Env,
    files: &[FileInput],
    frozen: bool,
    store: &Path,
    label: &str,
    into: &mut Vec<f64>,
    error: &mut Option<String>,
) {
    if error.is_some() {
        return;
    }
    match direct(env, &with_run_file(files, label), frozen, store).await {
        Ok((install, build)) => {
            eprintln!(
                "[bench] frameworks {:<17} direct {label:<7} {:>8.0} ms (install {:.0} build {:.0})",
                "",
                stats::ms(install + build),
                stats::ms(install),
                stats::ms(build)
            );
            into.push(stats::ms(install + build));
        }
        Err(e) => {
            let e = format!("{e:#}");
            eprintln!("[bench] frameworks direct {label} failed: {e}");
            *error = Some(e);
        }
    }
}

/// The project's files written to a fresh folder, then the two commands a person runs
/// (frozen when the project has a lockfile). Removing the folder afterwards is not timed.
async fn direct(
    env: &Env,
    files: &[FileInput],
    frozen: bool,
    store: &Path,
) -> anyhow::Result<(Duration, Duration)> {
    let (root, project) = farm::direct_folder(env, "direct-fw-")?;
    let sources = SourceFile::parse_all(files, Default::default()).context("the project's files")?;
    write_sources(&project, &sources)?;
    let times = farm::install_and_build_with(env, root.path(), &project, frozen, store).await;
    tokio::task::spawn_blocking(move || drop(root)).await?;
    times
}

fn write_sources(project: &Path, sources: &[SourceFile]) -> anyhow::Result<()> {
    for f in sources {
        let target: PathBuf = project.join(f.path.as_str());
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &f.content).with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(())
}
