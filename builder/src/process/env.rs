//! A step's environment ([`StepEnv`]): the variables a build sees, what stops it early, how it
//! is confined, its network and who it runs as; and how it finds the program it runs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::sandbox::{Cell, Confinement, Identity, Network};
use crate::which::find_on_path;

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
    pub(super) confined: Option<(Arc<Confinement>, Arc<Cell>)>,
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
            // `packageManager` naming npm, Yarn or another pnpm: this host's pnpm runs the
            // project's scripts anyway (`pnpm run build` refuses otherwise), and never fetches
            // the one named.
            ("npm_config_package_manager_strict".into(), "false".into()),
            (
                "npm_config_manage_package_manager_versions".into(),
                "false".into(),
            ),
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

    /// The same environment with a project's own values added (the build and checks steps):
    /// the sandbox's own names were refused when the values were set, and are kept here
    /// whatever the values say.
    pub fn with_project_env(&self, values: &[(String, String)]) -> Self {
        let mut vars = self.vars.clone();
        for (name, value) in values {
            if !vars.iter().any(|(n, _)| n == name) {
                vars.push((name.clone(), value.clone()));
            }
        }
        Self { vars, ..self.clone() }
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
}
