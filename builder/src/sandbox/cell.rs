//! A build's cell: what its commands share (its cgroup, its user, its workspace) and the warm
//! sandbox its install may start in.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cgroup::BuildCgroup;
use super::users::BuildUser;
use super::warm;

/// What one build's commands need: its cgroup, its user and its workspace; and the warm
/// sandbox its install may start in ([`warm`]).
#[derive(Debug)]
pub struct Cell {
    pub cgroup: Option<BuildCgroup>,
    /// The uid the build runs as (none when the daemon cannot switch users).
    pub user: Option<Arc<BuildUser>>,
    pub workspace: PathBuf,
    pub(super) warm: std::sync::Mutex<Option<warm::WarmChild>>,
    /// Whether any command ran in it (a warm sandbox is given back only when none did).
    pub(super) ran: std::sync::atomic::AtomicBool,
}

impl Cell {
    /// A cell in a warm sandbox's cgroup, the sandbox kept for the build's install.
    pub fn warm(taken: warm::Warm, workspace: &Path) -> Self {
        let (child, cgroup, user) = taken.into_parts();
        Self {
            cgroup,
            user,
            workspace: workspace.to_owned(),
            warm: std::sync::Mutex::new(Some(child)),
            ran: Default::default(),
        }
    }

    /// The warm sandbox, for the command about to run (at most once).
    pub fn take_warm(&self) -> Option<warm::WarmChild> {
        self.warm.lock().expect("not poisoned").take()
    }

    /// Notes that a command runs in this cell.
    pub fn ran(&self) {
        self.ran.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The warm sandbox back, untouched, when no command ran in this cell (a build with no
    /// process: a static site): its cgroup was never used either.
    pub fn unused_warm(&self) -> Option<warm::Warm> {
        if self.ran.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let child = self.take_warm()?;
        Some(warm::Warm::from_parts(
            child,
            self.cgroup.clone(),
            self.user.clone(),
        ))
    }

    /// The build's uid and gid, when the daemon switches users.
    pub fn ids(&self) -> Option<(u32, u32)> {
        self.user.as_ref().map(|u| (u.uid, u.gid))
    }
}
