//! Warm sandboxes: an install's confinement, started before its build arrives.
//!
//! Between a build's start and its first process, a cold start spends tens of milliseconds
//! that have nothing to do with the build: the exec chain (`sh` joining the cgroup,
//! `prlimit`, `setpriv`), bubblewrap making the namespaces and mounts, and `node` starting the
//! egress bridge (about 60 ms of `ops/bench/run.sh dispatch` here). So a daemon keeps one
//! warm sandbox per worker slot: that very chain, made as an install's is (same binds, user,
//! limits and network; a cgroup and an egress proxy of its own), whose last program is a stub,
//! `/bin/sh -s`: a shell reading its commands from its stdin, which says it is ready (the pool
//! sends it `echo kiln-warm-ready`) and waits for the next line. The build that takes it sends
//! that line (its environment, its working folder and its install command, each quoted, in one
//! `{ …; }` group) and the stub `exec`s the command.
//!
//! - A warm sandbox holds nothing of any build before one takes it, and serves that build only;
//!   then it is gone like a cold one.
//! - A build takes one when it starts, and its cgroup becomes the build's; a build that runs
//!   no process (a static site) gives it back untouched.
//! - One that died, or is not ready in time, is thrown away and the install starts cold: a
//!   warm sandbox makes an install start sooner, never fails it.
//! - The pool refills in the background once a warm sandbox is used, and empties when the
//!   daemon drains (`KILN_WARM_SANDBOXES=off` turns it off).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use kiln_shared::backoff::Backoff;
#[cfg(test)]
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::cgroup::BuildCgroup;
use super::egress::{EgressProxy, ProxyLog};
use super::users::BuildUser;
use super::{Confinement, Identity, Network};
use crate::log::BuildLog;

/// What the stub prints once it runs, before it waits for its command.
const READY: &[u8] = b"kiln-warm-ready\n";

/// What the pool sends the stub first: the stub says it is ready and waits for its command.
///
/// The stub is a shell reading its script from the pipe (`sh -s`) rather than a script that
/// reads the command with `read` and `eval`s it: `read` takes a pipe one byte at a time (a
/// system call per byte: about 0.3 ms for an install's line of 1 KB), while a shell reading its
/// script takes what the pipe holds at once. The command is one `{ …; }` group on one line, so
/// a line cut short (the daemon died while sending it) is a syntax error that runs nothing, and
/// the stub exits at the end of its input (the daemon went away) without running anything.
const HELLO: &[u8] = b"echo kiln-warm-ready\n";

/// How long a warm sandbox may take to be ready before it is thrown away.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// How long a build waits for a warm sandbox that is still starting before it starts cold.
const TAKE_WAIT: Duration = Duration::from_secs(5);

/// How often idle warm sandboxes are looked at (the dead are replaced).
const CHECK_EVERY: Duration = Duration::from_secs(30);

/// Waits after failures to make one: the first, and the most.
const BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Why a warm sandbox could not run a command (the command then starts cold).
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("it exited")]
    Exited,
    #[error("it was not ready in time")]
    NotReady,
    #[error("it did not start: {0}")]
    Broken(String),
    #[error("the command cannot be passed on one line")]
    Unquotable,
    #[error("cannot send it the command: {0}")]
    Send(std::io::Error),
}

/// A started sandbox waiting for its command.
#[derive(Debug)]
pub struct WarmChild {
    child: Child,
    /// Greets the stub and reads its ready line, then hands back its stdin and stdout.
    ready: Option<JoinHandle<std::io::Result<(ChildStdin, ChildStdout)>>>,
    is_ready: Arc<AtomicBool>,
    egress: Option<(EgressProxy, ProxyLog)>,
    /// Counts it as lent by the pool until it is used or dropped.
    lent: Option<Lent>,
}

/// A warm sandbox, its cgroup and the build uid it holds (its group is the one the install
/// runs with, so it is the uid of the build that takes it).
#[derive(Debug)]
pub struct Warm {
    child: WarmChild,
    cgroup: Option<BuildCgroup>,
    user: Option<Arc<BuildUser>>,
}

impl Warm {
    pub fn into_parts(self) -> (WarmChild, Option<BuildCgroup>, Option<Arc<BuildUser>>) {
        (self.child, self.cgroup, self.user)
    }

    pub fn from_parts(child: WarmChild, cgroup: Option<BuildCgroup>, user: Option<Arc<BuildUser>>) -> Self {
        Self { child, cgroup, user }
    }

    /// Kills it and removes its cgroup (in the background); its uid is let go.
    fn discard(self) {
        let Self { child, cgroup, user } = self;
        drop(child);
        drop(user);
        discard_cgroup(cgroup);
    }
}

/// A command started in a warm sandbox.
#[derive(Debug)]
pub struct Started {
    /// Its stdout and stderr piped, its stdin closed.
    pub child: Child,
    /// Serves the command's install until dropped.
    pub egress: Option<EgressProxy>,
}

impl WarmChild {
    /// Whether it is still running and has not failed to get ready.
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None)) && !self.failed()
    }

    fn failed(&self) -> bool {
        self.ready
            .as_ref()
            .is_some_and(|r| r.is_finished() && !self.is_ready.load(Ordering::Acquire))
    }

    /// Runs `program args` in `cwd` with exactly `env` (plus the egress bridge's proxy
    /// variables, as a cold install gets them), its stdin `/dev/null`, its output to the
    /// returned child's pipes. (Dropped unused, it is killed: `kill_on_drop` ends bubblewrap,
    /// and with it everything in its namespaces.)
    pub async fn start(
        mut self,
        env: &[(String, String)],
        cwd: &Path,
        program: &Path,
        args: &[&str],
        log: &BuildLog,
    ) -> Result<Started, Unusable> {
        let line = command_line(env, cwd, program, args).ok_or(Unusable::Unquotable)?;
        if !matches!(self.child.try_wait(), Ok(None)) {
            return Err(Unusable::Exited);
        }
        let ready = self.ready.take().expect("a warm sandbox starts once");
        let (mut stdin, stdout) = match tokio::time::timeout(TAKE_WAIT, ready).await {
            Ok(Ok(Ok(pipes))) => pipes,
            Ok(Ok(Err(e))) => return Err(Unusable::Broken(e.to_string())),
            Ok(Err(e)) => return Err(Unusable::Broken(e.to_string())),
            Err(_) => return Err(Unusable::NotReady),
        };
        if let Some((_, proxy_log)) = &self.egress {
            proxy_log.attach(log);
        }
        let sent = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await
        };
        sent.await.map_err(Unusable::Send)?;
        drop(stdin);
        self.child.stdout = Some(stdout);
        // Used: the pool makes the next one.
        drop(self.lent.take());
        Ok(Started {
            child: self.child,
            egress: self.egress.map(|(proxy, _)| proxy),
        })
    }
}

/// `{ cd -- …; unset OLDPWD PWD; export …; exec … </dev/null; }`, every word single-quoted
/// (the shell's `cd` sets `PWD` and `OLDPWD`, which a cold start does not give a command);
/// `None` when a word cannot be passed on one line (a newline or NUL in it) or is not UTF-8.
pub fn command_line(env: &[(String, String)], cwd: &Path, program: &Path, args: &[&str]) -> Option<String> {
    let mut line = String::from("{ cd -- ");
    line.push_str(&quote(cwd.to_str()?)?);
    line.push_str(" || exit 125; unset OLDPWD PWD;");
    if !env.is_empty() {
        line.push_str(" export");
    }
    for (key, value) in env {
        let valid_key = !key.is_empty()
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !key.as_bytes()[0].is_ascii_digit();
        if !valid_key {
            return None;
        }
        line.push(' ');
        line.push_str(&quote(&format!("{key}={value}"))?);
    }
    if !env.is_empty() {
        line.push(';');
    }
    line.push_str(" exec ");
    line.push_str(&quote(program.to_str()?)?);
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg)?);
    }
    line.push_str(" </dev/null; }\n");
    Some(line)
}

fn quote(word: &str) -> Option<String> {
    if word.contains(['\n', '\r', '\0']) {
        return None;
    }
    Some(format!("'{}'", word.replace('\'', r"'\''")))
}

/// Counts a warm sandbox as lent until dropped, then wakes the refiller.
#[derive(Debug)]
struct Lent(Weak<Inner>);

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner.lent.fetch_sub(1, Ordering::AcqRel);
            inner.wake.notify_one();
        }
    }
}

/// One warm sandbox per worker slot of this daemon.
#[derive(Debug, Clone)]
pub struct WarmPool(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    confinement: Arc<Confinement>,
    /// `node`, which runs the egress bridge.
    node: PathBuf,
    size: usize,
    idle: Mutex<Vec<Warm>>,
    lent: AtomicUsize,
    wake: Arc<Notify>,
    closed: AtomicBool,
    made: AtomicUsize,
}

impl WarmPool {
    /// A pool of `size` warm sandboxes, filled in the background; `None` (said in the log)
    /// when installs cannot start warm here.
    pub fn start(confinement: Arc<Confinement>, size: usize, enabled: bool) -> Option<Self> {
        if !enabled {
            tracing::info!("KILN_WARM_SANDBOXES=off: every install starts its sandbox cold");
            return None;
        }
        if !confinement.can_warm() {
            tracing::warn!("installs start their sandbox cold (tens of ms more per build): KILN_PNPM_STORE is not inside KILN_WORK_DIR, so an install's sandbox depends on its build");
            return None;
        }
        let path = std::env::var("PATH").unwrap_or_default();
        let node = crate::which::find_on_path(&path, "node").unwrap_or_else(|| "node".into());
        let inner = Arc::new(Inner {
            confinement,
            node,
            size,
            idle: Mutex::default(),
            lent: AtomicUsize::new(0),
            wake: Arc::new(Notify::new()),
            closed: AtomicBool::new(false),
            made: AtomicUsize::new(0),
        });
        tokio::spawn(refill(Arc::downgrade(&inner), inner.wake.clone()));
        Some(Self(inner))
    }

    /// A warm sandbox for a build that is starting: a ready one if there is one, else one
    /// still starting; none when all are taken.
    pub fn take(&self) -> Option<Warm> {
        let mut idle = self.0.idle.lock().expect("not poisoned");
        // The dead go (their cgroups too), and the refiller replaces them.
        let mut i = 0;
        while i < idle.len() {
            if idle[i].child.alive() {
                i += 1;
            } else {
                idle.remove(i).discard();
                self.0.wake.notify_one();
            }
        }
        let at = idle
            .iter()
            .position(|w| w.child.is_ready.load(Ordering::Acquire))
            .or((!idle.is_empty()).then_some(0))?;
        let mut warm = idle.remove(at);
        self.0.lent.fetch_add(1, Ordering::AcqRel);
        warm.child.lent = Some(Lent(Arc::downgrade(&self.0)));
        Some(warm)
    }

    /// Takes back a warm sandbox no command ran in (else it is thrown away).
    pub fn give_back(&self, mut warm: Warm) {
        let lent = warm.child.lent.take();
        {
            let mut idle = self.0.idle.lock().expect("not poisoned");
            if !self.0.closed.load(Ordering::Acquire) && idle.len() < self.0.size && warm.child.alive() {
                idle.push(warm);
                drop(idle);
                drop(lent);
                return;
            }
        }
        drop(lent);
        warm.discard();
    }

    /// Throws every idle warm sandbox away and makes no more (the daemon drains).
    pub fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
        let idle = std::mem::take(&mut *self.0.idle.lock().expect("not poisoned"));
        for warm in idle {
            warm.discard();
        }
        self.0.wake.notify_one();
    }

    /// Idle warm sandboxes, and how many were made so far.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.0.idle.lock().expect("not poisoned").len(),
            self.0.made.load(Ordering::Relaxed),
        )
    }
}

impl Inner {
    fn needed(&self) -> usize {
        let idle = self.idle.lock().expect("not poisoned").len();
        self.size.saturating_sub(idle + self.lent.load(Ordering::Acquire))
    }

    /// Starts one warm sandbox: a cgroup, an egress proxy, the chain with the stub at its end.
    fn make(self: &Arc<Self>) -> std::io::Result<Warm> {
        let confinement = &self.confinement;
        let name = format!("warm-{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
        // The workspace is not part of the sandbox where warm sandboxes are made (see
        // `Confinement::can_warm`).
        let cell = confinement
            .cell(&name, Path::new("/"))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let cgroup = cell.cgroup.clone();
        let egress = match confinement.egress() {
            Some(allowed) => {
                let socket = confinement.egress_socket();
                let log = ProxyLog::default();
                let proxy = EgressProxy::start(
                    &socket,
                    confinement.socket_owner(&cell, Identity::Store),
                    allowed.clone(),
                    confinement.packages(),
                    log.clone(),
                );
                match proxy {
                    Ok(proxy) => Some((proxy, log, socket)),
                    Err(e) => {
                        discard_cgroup(cgroup);
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let proxied = egress
            .as_ref()
            .map(|(_, _, socket)| (self.node.as_path(), socket.as_path()));
        let argv: Vec<OsString> = confinement.wrap(
            &cell,
            Identity::Store,
            Path::new("/bin/sh"),
            &["-s"],
            Path::new("/"),
            Network::Registry,
            proxied,
        );
        let spawned = Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .current_dir("/")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                discard_cgroup(cgroup);
                return Err(e);
            }
        };
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let is_ready = Arc::new(AtomicBool::new(false));
        let ready = {
            let is_ready = is_ready.clone();
            let wake = self.wake.clone();
            tokio::spawn(async move {
                let mut got = vec![0u8; READY.len()];
                let read = tokio::time::timeout(READY_WITHIN, async {
                    stdin.write_all(HELLO).await?;
                    stdout.read_exact(&mut got).await
                })
                .await;
                match read {
                    Ok(Ok(_)) if got == READY => {
                        is_ready.store(true, Ordering::Release);
                        Ok((stdin, stdout))
                    }
                    outcome => {
                        // Not ready: the refiller replaces it.
                        wake.notify_one();
                        Err(std::io::Error::other(match outcome {
                            Ok(Ok(_)) => format!("it printed {:?} first", String::from_utf8_lossy(&got)),
                            Ok(Err(e)) => format!("it ended before it was ready: {e}"),
                            Err(_) => format!("not ready within {} s", READY_WITHIN.as_secs()),
                        }))
                    }
                }
            })
        };
        self.made.fetch_add(1, Ordering::Relaxed);
        Ok(Warm {
            child: WarmChild {
                child,
                ready: Some(ready),
                is_ready,
                egress: egress.map(|(proxy, log, _)| (proxy, log)),
                lent: None,
            },
            cgroup,
            user: cell.user.clone(),
        })
    }
}

/// Removes a cgroup in the background (when there is a runtime to do it; else the daemon's
/// next start removes it with the other leftovers).
fn discard_cgroup(cgroup: Option<BuildCgroup>) {
    if let (Some(cgroup), Ok(runtime)) = (cgroup, tokio::runtime::Handle::try_current()) {
        runtime.spawn(async move { cgroup.remove().await });
    }
}

/// Keeps the pool full: after each use, after a warm sandbox died, and every
/// [`CHECK_EVERY`]; backs off while they cannot be made.
async fn refill(pool: Weak<Inner>, wake: Arc<Notify>) {
    let mut backoff = Backoff::new(BACKOFF, MAX_BACKOFF);
    loop {
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        {
            let Some(inner) = pool.upgrade() else { return };
            if inner.closed.load(Ordering::Acquire) {
                return;
            }
            let dead: Vec<Warm> = {
                let mut idle = inner.idle.lock().expect("not poisoned");
                let (alive, dead) = std::mem::take(&mut *idle)
                    .into_iter()
                    .partition(|w: &Warm| !w.child.failed());
                *idle = alive;
                dead
            };
            let failed = !dead.is_empty();
            for warm in dead {
                warm.discard();
            }
            if failed {
                let delay = backoff.next_delay();
                tracing::warn!(
                    retry_in_ms = delay.as_millis() as u64,
                    "a warm sandbox died or did not get ready; installs start cold meanwhile"
                );
                drop(inner);
                tokio::time::sleep(delay).await;
                continue;
            }
            if inner.needed() > 0 {
                match inner.make() {
                    Ok(warm) => {
                        inner.idle.lock().expect("not poisoned").push(warm);
                        backoff.reset();
                        continue;
                    }
                    Err(e) => {
                        let delay = backoff.next_delay();
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot start a warm sandbox; installs start cold meanwhile");
                        drop(inner);
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                }
            }
        }
        tokio::select! {
            () = &mut woken => {}
            () = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests;
