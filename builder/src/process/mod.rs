//! Running untrusted commands: each confined (see [`crate::sandbox`]) in its own process group
//! with a scrubbed environment, a wall-clock deadline, its build's limits watched,
//! stdout/stderr into the build log, and the whole group killed when the command ends, its time
//! is up or it passes a limit, so nothing it started outlives it.

mod env;
mod output;

use std::path::Path;
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::Command;
use tokio::time::Instant;

pub use self::env::StepEnv;
use self::output::{collect_capped, pipe_lines};
use crate::log::BuildLog;
use crate::sandbox::egress::{EgressProxy, ProxyLog};
use crate::sandbox::watch::{Breach, Watch};
use crate::sandbox::{Identity, Network};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the build took longer than its limit of {limit_secs} s and was killed")]
    Timeout { limit_secs: u64 },
    #[error("the build was stopped")]
    Stopped,
    #[error(transparent)]
    Limit(#[from] Breach),
    #[error("waiting for {program}: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// One command to run.
#[derive(Debug)]
pub struct Invocation<'a> {
    pub program: &'a str,
    pub args: &'a [&'a str],
    pub cwd: &'a Path,
    /// Written to the command's stdin (else stdin is /dev/null).
    pub stdin: Option<Vec<u8>>,
}

/// Runs a command until it exits or `deadline` passes; its stdout and stderr go to `log`.
pub async fn run(
    env: &StepEnv,
    inv: Invocation<'_>,
    deadline: Instant,
    log: &BuildLog,
) -> Result<ExitStatus, RunError> {
    run_inner(env, inv, deadline, log, None)
        .await
        .map(|(status, _)| status)
}

/// Like [`run`], but collects stdout (up to `cap` bytes; more than that is reported by a
/// returned buffer longer than `cap`) instead of logging it.
pub async fn run_capturing(
    env: &StepEnv,
    inv: Invocation<'_>,
    deadline: Instant,
    log: &BuildLog,
    cap: usize,
) -> Result<(ExitStatus, Vec<u8>), RunError> {
    run_inner(env, inv, deadline, log, Some(cap))
        .await
        .map(|(status, out)| (status, out.unwrap_or_default()))
}

async fn run_inner(
    env: &StepEnv,
    inv: Invocation<'_>,
    deadline: Instant,
    log: &BuildLog,
    capture: Option<usize>,
) -> Result<(ExitStatus, Option<Vec<u8>>), RunError> {
    let Invocation {
        program,
        args,
        cwd,
        stdin,
    } = inv;
    log.line(&format!("$ {program} {}", args.join(" ")));
    let resolved = env.resolve(program);
    // The egress proxy of an install serves as long as its command runs.
    let mut egress: Option<(EgressProxy, std::path::PathBuf)> = None;
    if let Some((_, cell)) = &env.confined {
        cell.ran();
    }
    let warm = match &env.confined {
        Some((_, cell))
            if env.network == Network::Registry && env.identity == Identity::Store && stdin.is_none() =>
        {
            cell.take_warm()
        }
        _ => None,
    };
    let started_warm = match warm {
        Some(warm) => match warm.start(&env.vars, cwd, &resolved, args, log).await {
            Ok(started) => Some(started),
            Err(why) => {
                tracing::warn!(%why, "the warm sandbox cannot run the install; starting it cold");
                None
            }
        },
        None => None,
    };
    if let (Network::Registry, Identity::Store, Some(metrics)) = (env.network, env.identity, &env.metrics) {
        metrics.install_started(if started_warm.is_some() { "warm" } else { "cold" });
    }
    let (child, _warm_proxy) = match started_warm {
        Some(started) => (started.child, started.egress),
        None => {
            let mut cmd = cold_command(env, &resolved, args, cwd, log, &mut egress)?;
            cmd.current_dir(cwd)
                .env_clear()
                .envs(env.vars.iter().map(|(k, v)| (k, v)))
                .stdin(if stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(true);
            let child = cmd.spawn().map_err(|source| RunError::Spawn {
                program: program.to_owned(),
                source,
            })?;
            (child, None)
        }
    };
    supervise(env, program, child, stdin, deadline, log, capture).await
}

/// The command that starts `resolved` confined (or not, in this module's tests), and the
/// egress proxy its install goes through.
fn cold_command(
    env: &StepEnv,
    resolved: &Path,
    args: &[&str],
    cwd: &Path,
    log: &BuildLog,
    egress: &mut Option<(EgressProxy, std::path::PathBuf)>,
) -> Result<Command, RunError> {
    Ok(match &env.confined {
        Some((confinement, cell)) => {
            if let (Network::Registry, Some(allowed)) = (env.network, confinement.egress()) {
                let socket = confinement.egress_socket();
                let proxy = EgressProxy::start(
                    &socket,
                    confinement.socket_owner(cell, env.identity),
                    allowed.clone(),
                    confinement.packages(),
                    ProxyLog::of(log.clone()),
                )
                .map_err(|source| RunError::Spawn {
                    program: "the egress proxy".into(),
                    source,
                })?;
                *egress = Some((proxy, socket));
            }
            let node = egress.as_ref().map(|_| env.resolve("node"));
            let proxied = egress
                .as_ref()
                .zip(node.as_deref())
                .map(|((_, socket), node)| (node, socket.as_path()));
            let argv = confinement.wrap(cell, env.identity, resolved, args, cwd, env.network, proxied);
            let mut cmd = Command::new(&argv[0]);
            cmd.args(&argv[1..]);
            cmd
        }
        None => {
            let mut cmd = Command::new(resolved);
            cmd.args(args);
            cmd
        }
    })
}

/// Waits for a started command: its output into the log, its limits watched, its deadline
/// and stop honoured, and its whole group killed at the end.
async fn supervise(
    env: &StepEnv,
    program: &str,
    mut child: tokio::process::Child,
    stdin: Option<Vec<u8>>,
    deadline: Instant,
    log: &BuildLog,
    capture: Option<usize>,
) -> Result<(ExitStatus, Option<Vec<u8>>), RunError> {
    let pgid = child.id().map(|id| Pid::from_raw(id as i32));
    let watch = env.confined.as_ref().map(|(confinement, cell)| Watch {
        limits: &confinement.limits,
        cgroup: cell.cgroup.as_ref(),
        root_pid: pgid.map(Pid::as_raw),
        workspace: &cell.workspace,
        log,
        max_log_bytes: env.max_log_bytes,
        // What the build's own uid wrote counts, once per file whatever its links.
        owner: cell.ids().map(|(uid, _)| uid),
    });
    let breach = async {
        match &watch {
            Some(watch) => watch.first_breach().await,
            None => std::future::pending().await,
        }
    };
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            // A command that does not read its input closes the pipe: not an error here.
            let _ = pipe.write_all(&input).await;
        });
    }
    let err_reader = tokio::spawn(pipe_lines(
        child.stderr.take().expect("stderr is piped"),
        log.clone(),
    ));
    let out_pipe = child.stdout.take().expect("stdout is piped");
    let collect = async {
        match capture {
            Some(cap) => Some(collect_capped(out_pipe, cap).await),
            None => {
                pipe_lines(out_pipe, log.clone()).await;
                None
            }
        }
    };
    let waited = async { tokio::join!(child.wait(), collect) };
    let mut outcome = tokio::select! {
        (status, out) = waited => status
            .map(|s| (s, out))
            .map_err(|source| RunError::Wait { program: program.to_owned(), source }),
        () = tokio::time::sleep_until(deadline) => Err(RunError::Timeout { limit_secs: env.limit_secs }),
        () = env.stop.cancelled() => Err(RunError::Stopped),
        breach = breach => Err(RunError::Limit(breach)),
    };
    if let Err(RunError::Limit(breach)) = &outcome {
        // Passed a limit: the whole tree goes at once, no grace.
        if let Some(pgid) = pgid {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        if let Some(cgroup) = env.confined.as_ref().and_then(|(_, cell)| cell.cgroup.as_ref()) {
            cgroup.kill_all().await;
        }
        log.verdict(&format!(
            "[kiln] {breach}: the build's processes were killed at {}",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ));
    }
    if let (Err(RunError::Stopped), Some(pgid)) = (&outcome, pgid) {
        // Stopped: the group gets SIGTERM and the grace period to exit by itself.
        log.line(&format!(
            "[kiln] stopping: SIGTERM, then SIGKILL after {} s",
            env.grace.as_secs()
        ));
        let _ = killpg(pgid, Signal::SIGTERM);
        let _ = tokio::time::timeout(env.grace, child.wait()).await;
    }
    // Whatever the command left running in its group goes too.
    if let Some(pgid) = pgid {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    let _ = child.wait().await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), err_reader).await;
    if let (Ok((status, _)), Some(watch)) = (&outcome, &watch) {
        if !status.success() {
            if let Some(breach) = watch.after_failure(status).await {
                log.verdict(&format!("[kiln] {breach}"));
                outcome = Err(RunError::Limit(breach));
            }
        }
    }
    if let Err(RunError::Timeout { .. }) = &outcome {
        log.line(&format!(
            "[kiln] killed: the build passed its limit of {} s",
            env.limit_secs
        ));
    }
    outcome
}
