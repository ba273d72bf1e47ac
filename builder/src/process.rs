//! Running untrusted commands: each confined (see [`crate::sandbox`]) in its own process group
//! with a scrubbed environment, a wall-clock deadline, its build's limits watched,
//! stdout/stderr into the build log, and the whole group killed when the command ends, its time
//! is up or it passes a limit, so nothing it started outlives it.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::log::BuildLog;
use crate::sandbox::egress::{EgressProxy, ProxyLog};
use crate::sandbox::watch::{Breach, Watch};
use crate::sandbox::{Cell, Confinement, Identity, Network};
use crate::which::find_on_path;

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

/// What one step of a build runs with: its environment (what a build needs and none of Kiln's
/// variables), its deadline's message, what stops it early, how it is confined (the
/// [`Confinement`] and the build's [`Cell`]), its network and who it runs as.
#[derive(Debug, Clone)]
pub struct StepEnv {
    /// The environment variables a build sees: what a build needs and none of Kiln's.
    pub vars: Vec<(String, String)>,
    /// For messages only.
    pub limit_secs: u64,
    /// Stops the command early (a cancel, a lost claim, a drain): SIGTERM to its group, then
    /// SIGKILL after `grace`.
    pub stop: CancellationToken,
    pub grace: Duration,
    /// How commands are confined, and the build's cell (unconfined when absent: for tests of
    /// this module only).
    confined: Option<(Arc<Confinement>, Arc<Cell>)>,
    /// How commands reach the network (install: the registry; generate: the host's network;
    /// the build: not at all).
    pub network: Network,
    /// Who commands run as (the build's own uid, but for the store's half of an install).
    pub identity: Identity,
    /// The stored log's cap (a build printing far past it is stopped).
    pub max_log_bytes: u64,
    /// Counts installs started warm and cold.
    pub metrics: Option<kiln_shared::metrics::Metrics>,
}

impl StepEnv {
    pub fn new(home: &Path, tmp: &Path, pnpm_cache: &Path, limit_secs: u64) -> Self {
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        let vars = vec![
            ("PATH".into(), path),
            ("HOME".into(), home.display().to_string()),
            ("TMPDIR".into(), tmp.display().to_string()),
            ("CI".into(), "true".into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("npm_config_cache_dir".into(), pnpm_cache.display().to_string()),
            ("npm_config_update_notifier".into(), "false".into()),
            ("NO_COLOR".into(), "1".into()),
        ];
        Self {
            vars,
            limit_secs,
            stop: CancellationToken::new(),
            grace: Duration::from_secs(10),
            confined: None,
            network: Network::None,
            identity: Identity::Build,
            max_log_bytes: u64::MAX / 64,
            metrics: None,
        }
    }

    /// The same environment, its commands confined by `confinement` in `cell`.
    pub fn confined(mut self, confinement: Arc<Confinement>, cell: Arc<Cell>, max_log_bytes: u64) -> Self {
        self.confined = Some((confinement, cell));
        self.max_log_bytes = max_log_bytes;
        self
    }

    /// The same environment, counting its installs' starts (warm or cold) in `metrics`.
    pub fn counted_by(mut self, metrics: kiln_shared::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The same environment for the store's half of an install: run as the store's user, with its
    /// own home (no settings a build could have written there) and the sandbox's `/tmp`.
    pub fn as_store(&self) -> Self {
        let mut vars = self.vars.clone();
        if let Some((confinement, _)) = &self.confined {
            let home = confinement.store_home().display().to_string();
            for (name, value) in &mut vars {
                match name.as_str() {
                    "HOME" => *value = home.clone(),
                    "TMPDIR" => *value = "/tmp".into(),
                    _ => {}
                }
            }
        }
        Self {
            vars,
            identity: Identity::Store,
            ..self.clone()
        }
    }

    /// The same environment, reaching the network as `network` says.
    pub fn with_network(&self, network: Network) -> Self {
        Self {
            network,
            ..self.clone()
        }
    }

    /// `program` found on the step's `PATH` (as the child would find it), by absolute path:
    /// the standard library then starts it with `posix_spawn` instead of forking the whole
    /// multi-threaded daemon (`ops/bench/run.sh dispatch` measured about a millisecond less
    /// from a build's start to its first process). Unchanged when it has a `/` or is not found
    /// (the spawn then says so).
    pub fn resolve(&self, program: &str) -> std::path::PathBuf {
        if program.contains('/') {
            return program.into();
        }
        let path = self
            .vars
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str());
        find_on_path(path.unwrap_or_default(), program).unwrap_or_else(|| program.into())
    }

    /// The same environment, stopped by `stop` with `grace` between SIGTERM and SIGKILL.
    pub fn stopped_by(mut self, stop: CancellationToken, grace: Duration) -> Self {
        self.stop = stop;
        self.grace = grace;
        self
    }
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

/// The longest line of a command's output that is kept whole. A longer line is cut: its
/// first `MAX_LINE_BYTES` are logged followed by [`line_cut_marker`], and the rest of it (up to
/// its newline) is discarded but counted as printed, so a command printing without newlines
/// holds no more than this (and [`PIPE_CHUNK`]) of the daemon's memory per pipe, and is still
/// stopped by the log limit.
const MAX_LINE_BYTES: usize = 16 * 1024;
/// How much of a pipe is read at a time.
const PIPE_CHUNK: usize = 64 * 1024;

/// Ends the kept start of a line cut at [`MAX_LINE_BYTES`].
fn line_cut_marker() -> String {
    format!(" [kiln: line cut at {} KB]", MAX_LINE_BYTES / 1024)
}

/// A pipe's lines into `log` (UTF-8 or not, `\r\n` or `\n`), each kept to at most
/// [`MAX_LINE_BYTES`]: the memory used is bounded whatever the command prints.
async fn pipe_lines(mut pipe: impl AsyncRead + Unpin, log: BuildLog) {
    let mut chunk = vec![0u8; PIPE_CHUNK];
    let mut line: Vec<u8> = Vec::with_capacity(MAX_LINE_BYTES);
    // The line being read was cut: the rest of it, up to its newline, is discarded.
    let mut cutting = false;
    loop {
        let n = match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            let (part, ended) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let part = &rest[..i];
                    rest = &rest[i + 1..];
                    (part, true)
                }
                None => (std::mem::take(&mut rest), false),
            };
            let newline = u64::from(ended);
            if cutting {
                log.discarded(part.len() as u64 + newline);
                cutting = !ended;
                continue;
            }
            let room = MAX_LINE_BYTES - line.len();
            if part.len() <= room {
                line.extend_from_slice(part);
                if ended {
                    log_line(&log, &line);
                    line.clear();
                }
                continue;
            }
            line.extend_from_slice(&part[..room]);
            let kept = without_split_char(&line);
            let dropped = (line.len() - kept.len() + part.len() - room) as u64;
            log.cut_line(&String::from_utf8_lossy(kept), &line_cut_marker());
            log.discarded(dropped + newline);
            line.clear();
            cutting = !ended;
        }
    }
    if !line.is_empty() {
        log_line(&log, &line);
    }
}

/// One whole line read from a pipe (without its `\n`) into `log`.
fn log_line(log: &BuildLog, line: &[u8]) {
    let line = String::from_utf8_lossy(line);
    log.line(line.trim_end_matches(['\n', '\r']));
}

/// `bytes` without the last character when the end of `bytes` cut it in two.
fn without_split_char(bytes: &[u8]) -> &[u8] {
    let from = bytes.len().saturating_sub(3);
    match (from..bytes.len()).rev().find(|&i| bytes[i] & 0xC0 != 0x80) {
        Some(start) => {
            let width = match bytes[start] {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            if start + width > bytes.len() {
                &bytes[..start]
            } else {
                bytes
            }
        }
        None => bytes,
    }
}

/// Reads a pipe to its end, keeping at most `cap + 1` bytes (one more than allowed, so the
/// caller can tell the cap was passed) and draining the rest so the writer never blocks.
async fn collect_capped(mut pipe: impl AsyncRead + Unpin, cap: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = (cap + 1).saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_found_on_the_sandboxs_path_as_the_child_would_find_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = StepEnv::new(dir.path(), dir.path(), dir.path(), 1);
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tool = bin.join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::write(bin.join("plain"), "not executable").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("/nonexistent::{}", bin.display());
        env.vars.retain(|(k, _)| k != "PATH");
        env.vars.push(("PATH".into(), path));
        assert_eq!(env.resolve("tool"), tool);
        assert_eq!(env.resolve("plain"), Path::new("plain"), "not executable");
        assert_eq!(env.resolve("missing"), Path::new("missing"));
        assert_eq!(env.resolve("./tool"), Path::new("./tool"));
    }

    /// `input` through [`pipe_lines`] by a pipe, written `write` bytes at a time.
    async fn piped(input: Vec<u8>, write: usize, log: &BuildLog) {
        use tokio::io::AsyncWriteExt;
        let (mut tx, rx) = tokio::io::duplex(PIPE_CHUNK);
        let writer = tokio::spawn(async move {
            for part in input.chunks(write) {
                tx.write_all(part).await.unwrap();
            }
        });
        pipe_lines(rx, log.clone()).await;
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn a_line_without_end_is_cut_at_the_bound_and_the_rest_counted_but_not_kept() {
        const FLOOD: usize = 50 * 1024 * 1024;
        let mut input = b"before\r\n".to_vec();
        input.resize(input.len() + FLOOD, b'x');
        input.extend_from_slice(b"\nafter 1\nafter 2\r\n");
        input.extend_from_slice(&vec![b'y'; MAX_LINE_BYTES]);
        input.extend_from_slice("\n\u{e9}t\u{e9} ".as_bytes());
        input.extend_from_slice(b"\xff\nlast, no newline");
        let log = BuildLog::new(1 << 20);
        // Written in pieces that straddle the reads' ends.
        piped(input.clone(), 7919, &log).await;

        let text = String::from_utf8(log.bytes()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let marker = line_cut_marker();
        assert_eq!(marker, " [kiln: line cut at 16 KB]");
        assert_eq!(
            lines.len(),
            7,
            "{:?}",
            lines.iter().map(|l| l.len()).collect::<Vec<_>>()
        );
        assert_eq!(lines[0], "before");
        assert_eq!(lines[1], format!("{}{marker}", "x".repeat(MAX_LINE_BYTES)));
        assert_eq!(lines[2..4], ["after 1", "after 2"]);
        assert_eq!(
            lines[4],
            "y".repeat(MAX_LINE_BYTES),
            "a line of the bound exactly is whole"
        );
        assert_eq!(lines[5], "\u{e9}t\u{e9} \u{fffd}");
        assert_eq!(lines[6], "last, no newline");
        assert_eq!(log.last_line(), 7);
        // What was kept is bounded, whatever came in.
        let longest = text.lines().map(str::len).max().unwrap();
        assert_eq!(longest, MAX_LINE_BYTES + marker.len());
        assert!(text.len() < 3 * MAX_LINE_BYTES, "{}", text.len());
        // Every byte printed is counted (the marker and a dropped `\r` or two aside).
        let printed = log.printed();
        let input_len = input.len() as u64;
        assert!(
            (input_len..input_len + marker.len() as u64 + 8).contains(&printed),
            "{printed} of {input_len}"
        );
    }

    #[tokio::test]
    async fn a_cut_line_keeps_no_half_character_nor_half_secret() {
        let mut input = vec![b'a'; MAX_LINE_BYTES - 1];
        input.extend_from_slice("\u{e9}and more\n".as_bytes());
        input.extend_from_slice(&vec![b'b'; MAX_LINE_BYTES - 4]);
        input.extend_from_slice(b"hunter2-secret, and more\nnext\n");
        let log = BuildLog::with(
            1 << 20,
            crate::log::Redactor::new(["hunter2-secret".to_owned()]),
            None,
        );
        piped(input, PIPE_CHUNK, &log).await;
        let text = String::from_utf8(log.bytes()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let marker = line_cut_marker();
        assert_eq!(lines[0], format!("{}{marker}", "a".repeat(MAX_LINE_BYTES - 1)));
        assert_eq!(
            lines[1],
            format!("{}[redacted]{marker}", "b".repeat(MAX_LINE_BYTES - 4))
        );
        assert_eq!(lines[2], "next");
        assert!(!text.contains("hunt"), "no part of the secret is kept");
    }

    #[tokio::test]
    async fn a_flood_without_newline_passes_the_log_limit() {
        use crate::sandbox::watch::LOG_KILL_FACTOR;
        let dir = tempfile::tempdir().unwrap();
        let vars = [
            (
                "KILN_DATABASE_URL",
                "postgres://unused@127.0.0.1:1/unused".to_owned(),
            ),
            ("KILN_ARTIFACTS", format!("file://{}", dir.path().display())),
        ];
        let settings =
            kiln_shared::config::Settings::from_vars(vars.into_iter().map(|(k, v)| (k.to_owned(), v)))
                .unwrap();
        let cap: u64 = 64 * 1024;
        let log = BuildLog::new(cap as usize);
        let watch = Watch {
            limits: &settings.sandbox,
            cgroup: None,
            root_pid: None,
            workspace: dir.path(),
            log: &log,
            max_log_bytes: cap,
            owner: None,
        };
        piped(vec![b'x'; 2 * (LOG_KILL_FACTOR * cap) as usize], 65_536, &log).await;
        assert!(log.printed() > LOG_KILL_FACTOR * cap, "{}", log.printed());
        assert_eq!(log.last_line(), 1, "one line kept, cut");
        let breach = tokio::time::timeout(Duration::from_secs(5), watch.first_breach())
            .await
            .expect("the log limit is seen");
        assert_eq!(
            breach,
            Breach::Log {
                kb: 64,
                factor: LOG_KILL_FACTOR
            }
        );
        assert_eq!(
            breach.to_string(),
            "log limit 64 KB exceeded: the build printed more than 16 times that"
        );
    }
}
