//! The direct side of a comparison: the commands a person runs by hand (`pnpm install`, `pnpm
//! run build`) in a fresh folder, with the environment the builder gives its steps, so that a
//! farm's figure and a direct one differ only by the farm.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::farm::Env;

/// The environment of a direct run: the one the builder gives its steps (see
/// kiln-builder's `StepEnv`), so that the two sides differ only by the farm.
pub fn sandbox_env(env: &Env, home: &Path, tmp: &Path) -> Vec<(String, String)> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    vec![
        ("PATH".into(), path),
        ("HOME".into(), home.display().to_string()),
        ("TMPDIR".into(), tmp.display().to_string()),
        ("CI".into(), "true".into()),
        ("LANG".into(), "C.UTF-8".into()),
        (
            "npm_config_cache_dir".into(),
            env.pnpm_cache().display().to_string(),
        ),
        ("npm_config_update_notifier".into(), "false".into()),
        ("NO_COLOR".into(), "1".into()),
    ]
}

/// Runs one command of a direct run to completion; a failure is an error with its output.
pub async fn run_command(
    cwd: &Path,
    envs: &[(String, String)],
    program: &str,
    args: &[&str],
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = tokio::process::Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("starting {program}"))?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!(
            "`{program} {}` in {} failed ({}):\n{}{}",
            args.join(" "),
            cwd.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

/// A fresh folder for a direct run, with `home` and `tmp` beside the project like a build's
/// workspace. Returns (root, project).
/// What a person runs by hand, directly in `project` (under `root`'s home and tmp): `pnpm
/// install` (frozen or not, offline when it can) then the build, which must write
/// dist/index.html. Not the builder's own install command, which is split in two halves run as
/// two users: that split is part of what the farm's side pays for.
pub async fn install_and_build(
    env: &Env,
    root: &Path,
    project: &Path,
    frozen: bool,
) -> anyhow::Result<(Duration, Duration)> {
    let times = install_and_build_with(env, root, project, frozen, &env.direct_store()).await?;
    anyhow::ensure!(
        project.join("dist/index.html").is_file(),
        "the direct build wrote no dist/index.html"
    );
    Ok(times)
}

/// [`install_and_build`] with the pnpm store `store` (its metadata cache beside it, as the
/// builder keeps its own), whatever folder the build writes.
pub async fn install_and_build_with(
    env: &Env,
    root: &Path,
    project: &Path,
    frozen: bool,
    store: &Path,
) -> anyhow::Result<(Duration, Duration)> {
    let mut envs = sandbox_env(env, &root.join("home"), &root.join("tmp"));
    for (k, v) in &mut envs {
        if k == "npm_config_cache_dir" {
            *v = store.with_extension("cache").display().to_string();
        }
    }
    let store = store.display().to_string();
    let install = [
        "install",
        "--store-dir",
        &store,
        "--prefer-offline",
        if frozen {
            "--frozen-lockfile"
        } else {
            "--no-frozen-lockfile"
        },
        "--reporter=append-only",
    ];
    let install = run_command(project, &envs, "pnpm", &install).await?;
    let build = run_command(project, &envs, "pnpm", &["run", "build"]).await?;
    Ok((install, build))
}

pub fn direct_folder(env: &Env, prefix: &str) -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
    let root = tempfile::Builder::new().prefix(prefix).tempdir_in(&env.tmp)?;
    let project = root.path().join("project");
    for d in [project.clone(), root.path().join("home"), root.path().join("tmp")] {
        std::fs::create_dir_all(d)?;
    }
    Ok((root, project))
}
