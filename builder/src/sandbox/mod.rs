//! Confining untrusted build processes, decided once at start-up ([`Confinement::probe`]) and
//! applied to every command a build runs ([`Confinement::wrap`]):
//!
//! - **its own user**: a daemon running as root runs each build as a uid of its own
//!   (`KILN_BUILD_UIDS`, [`users`]), with no supplementary groups: the daemon's files, its
//!   `/proc/<pid>/environ`, other builds (running beside it, from any daemon of the host) and
//!   their files are out of reach;
//! - **two identities** ([`Identity`]): the trusted half of an install (`pnpm install
//!   --ignore-scripts --ignore-pnpmfile`: pnpm fetching packages checked against their
//!   integrity and linking them, no code of the project's or of a dependency's) runs as the
//!   store's user (`KILN_STORE_USER`), which alone writes the shared pnpm store and metadata
//!   cache, with the build's group to reach its workspace; everything else a build runs (its
//!   lifecycle and allowed dependency scripts, its build, the generator) runs as the build's
//!   own uid, which can write neither: the files `node_modules` shares with the store belong
//!   to the store's user and are read-only to the build;
//! - **its own namespaces** (bubblewrap, where the kernel allows unprivileged user namespaces):
//!   a file system of read-only system folders plus, for the build's own commands, its
//!   workspace alone (for the store's half: the work folder, so that pnpm can hard-link from
//!   the store into the workspace), nothing of Kiln's (data, config, other workspaces); its own
//!   process tree (nothing outlives the step, not even a daemonised child); no network, but
//!   during install the package registry through Kiln's egress proxy ([`egress`]), and the
//!   host's network for the operator's generator;
//! - **its own cgroup** (v2 or v1, where the daemon may make them): memory, processes and CPU
//!   for the build as a whole;
//! - **rlimits** on every process: CPU seconds, open files, file size.
//!
//! Each command becomes one exec chain, with no code of Kiln's in the child:
//! `sh` (joins the cgroup) → `prlimit` → `setpriv` (the user) → `bwrap` → the command. Where a
//! layer is not available the chain is shorter, and the daemon said so when it started: a
//! fallback is never silent.

mod bins;
mod cell;
pub mod cgroup;
mod chain;
pub mod egress;
mod probe;
pub mod users;
pub mod warm;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_shared::config::{AllowedHost, SandboxSettings};

pub use self::cell::Cell;
use self::cgroup::CgroupRoot;
use self::users::UidPool;

/// Who a command runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The store's user, with the build's group: the trusted half of an install only (pnpm
    /// with no scripts and no pnpmfile), which writes the shared store and links from it. It
    /// sees the work folder (the store is in it) and makes what it creates in the workspace
    /// writable by the build's group (umask 002).
    Store,
    /// The build's own uid: everything else. It sees its workspace alone.
    Build,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("KILN_SANDBOX=bwrap, but builds cannot get namespaces here: {0}")]
    NamespacesRequired(String),
    #[error("the build user {uid} cannot reach {what} {path}: {reason}")]
    Unreachable {
        uid: u32,
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(transparent)]
    NoUser(#[from] users::LeaseError),
    #[error("preparing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How this daemon confines builds (decided at start-up).
#[derive(Debug)]
pub struct Confinement {
    pub limits: SandboxSettings,
    /// bubblewrap, when builds get namespaces.
    bwrap: Option<PathBuf>,
    /// The uids builds run as, when the daemon (root) switches users.
    users: Option<UidPool>,
    /// The store's user and group, when the daemon (root) switches users.
    store_user: Option<(u32, u32)>,
    cgroups: Option<CgroupRoot>,
    prlimit: Option<PathBuf>,
    setpriv: Option<PathBuf>,
    /// Folders the store's half of an install writes besides the workspace (the pnpm store and
    /// cache).
    shared_rw: Vec<PathBuf>,
    /// The work folder, when the store and cache are inside it: bound as one mount for the
    /// store's half of an install, so pnpm hard-links packages from the store (across two
    /// mounts a link is `EXDEV` and pnpm copies every file).
    link_root: Option<PathBuf>,
    /// The home of the store's half of installs (`<work>/.kiln-store-home`): its own, so that
    /// no user-level pnpm or npm settings a build could write are read by it.
    store_home: PathBuf,
    /// The operator's list of dependencies whose build scripts run (a JSON array pnpm reads,
    /// `--config.only-built-dependencies-file`), bound read-only where scripts run.
    allowed_scripts: PathBuf,
    /// Where an install may connect through the egress proxy, and the bridge it runs inside
    /// the sandbox; `None` when installs share the host's network (no namespaces, or
    /// `KILN_EGRESS_ALLOW=host-network`).
    egress: Option<(Arc<Vec<AllowedHost>>, PathBuf)>,
    /// The fleet's package cache, which the egress proxy serves to installs (set once the
    /// daemon's backends are connected; never when installs have no egress proxy).
    packages: std::sync::OnceLock<Arc<crate::packages::PackageCache>>,
}

/// How a command reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Not at all (the build step).
    None,
    /// The package registry only, through the egress proxy (install).
    Registry,
    /// The host's network (the operator's generator).
    Host,
}

/// Where the operator's list of allowed build scripts is inside the sandbox.
pub const ALLOWED_SCRIPTS_IN_SANDBOX: &str = "/run/kiln/allowed-build-scripts.json";

impl Confinement {
    /// A cell for one build: its cgroup (named `name`) and a uid of its own, for `workspace`.
    pub fn cell(&self, name: &str, workspace: &Path) -> Result<Cell, SandboxError> {
        let user = match &self.users {
            Some(pool) => Some(Arc::new(pool.lease()?)),
            None => None,
        };
        let cgroup = match &self.cgroups {
            Some(root) => Some(
                root.create(name, self.limits.memory_mb * 1024 * 1024, self.limits.max_procs)
                    .map_err(|e| SandboxError::Io {
                        path: PathBuf::from("/sys/fs/cgroup"),
                        source: std::io::Error::other(e.to_string()),
                    })?,
            ),
            None => None,
        };
        Ok(Cell {
            cgroup,
            user,
            workspace: workspace.to_owned(),
            warm: Default::default(),
            ran: Default::default(),
        })
    }

    /// Whether installs can start in warm sandboxes here: the sandbox of an install's store half
    /// must not depend on its build, which holds when the work folder is bound as a whole (the
    /// pnpm store inside it) or there are no namespaces.
    pub fn can_warm(&self) -> bool {
        self.bwrap.is_none() || self.link_root.is_some()
    }

    /// Gives the workspace (everything in it, as Kiln wrote it or the build's own uid left it)
    /// to the build's user `ids`: folders `2770` (the group, the build's, is how the store's
    /// half of the install enters; new entries keep it), the workspace itself `0770`. Links are
    /// changed, never followed.
    pub fn hand_over(workspace: &Path, ids: Option<(u32, u32)>) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let Some((uid, gid)) = ids else {
            return Ok(());
        };
        for entry in walkdir::WalkDir::new(workspace).follow_links(false) {
            let entry = entry.map_err(std::io::Error::other)?;
            std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
            if entry.file_type().is_dir() && entry.depth() > 0 {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o2770))?;
            }
        }
        std::fs::set_permissions(workspace, std::fs::Permissions::from_mode(0o770))
    }

    /// After the store's half of an install: what it made in `project` goes to the build's user
    /// `ids`, but for the files it shares with the store (hard links: more than one name),
    /// which stay the store's user's and read-only to the build. So the build owns its tree as
    /// if it had installed it (pnpm's `rebuild` and the build's own tools may `chmod` a copied
    /// package's files or a bin), and nothing it owns is read by anyone else. Nothing of the
    /// build's has run since the store's half: links are changed, never followed. Returns the
    /// installed packages' package.json files, for [`Confinement::own_commands`].
    pub fn take_back(&self, project: &Path, ids: Option<(u32, u32)>) -> std::io::Result<InstalledPackages> {
        use std::os::unix::fs::MetadataExt;
        let mut installed = InstalledPackages::default();
        let (Some((store_uid, _)), Some((uid, gid))) = (self.store_user, ids) else {
            return Ok(installed);
        };
        for entry in walkdir::WalkDir::new(project).follow_links(false) {
            let entry = entry.map_err(std::io::Error::other)?;
            let meta = entry.metadata().map_err(std::io::Error::other)?;
            if meta.uid() == store_uid && (!meta.is_file() || meta.nlink() == 1) {
                std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
            }
            if meta.is_file() && bins::is_installed_manifest(project, entry.path()) {
                installed.manifests.push(entry.into_path());
            }
        }
        Ok(installed)
    }

    /// Before the build's half of an install: the files the installed packages declare as
    /// their commands (package.json's `bin`) become the build's own copies (mode 755), as a
    /// copied package's files are. pnpm `chmod`s each of them when it links commands after
    /// running scripts, and only a file's owner may; the store's file is never written. Only
    /// then: the build step itself does not link commands, so most builds skip this.
    pub fn own_commands(
        &self,
        installed: &InstalledPackages,
        ids: Option<(u32, u32)>,
    ) -> std::io::Result<()> {
        let (Some((store_uid, _)), Some(ids)) = (self.store_user, ids) else {
            return Ok(());
        };
        for manifest in &installed.manifests {
            bins::own_commands(manifest, store_uid, ids)?;
        }
        Ok(())
    }

    /// The allowed hosts when installs go through the egress proxy (else they share the host's
    /// network).
    pub fn egress(&self) -> Option<&Arc<Vec<AllowedHost>>> {
        self.egress.as_ref().map(|(hosts, _)| hosts)
    }

    /// Hands the egress proxies the fleet's package cache (once, before any install).
    pub fn serve_packages(&self, cache: Arc<crate::packages::PackageCache>) {
        if self.egress.is_some() {
            let _ = self.packages.set(cache);
        }
    }

    /// The package cache the egress proxies serve, when there is one.
    pub fn packages(&self) -> Option<Arc<crate::packages::PackageCache>> {
        self.packages.get().cloned()
    }

    /// Who owns the egress socket of a command run as `identity` in `cell`: only that user
    /// can connect to it.
    pub fn socket_owner(&self, cell: &Cell, identity: Identity) -> Option<(u32, u32)> {
        match identity {
            Identity::Store => self.store_user,
            Identity::Build => cell.ids(),
        }
    }

    /// The store's user, when the daemon switches users: what it owns in a build's tree is
    /// the store's, read-only to the build.
    pub fn store_uid(&self) -> Option<u32> {
        self.store_user.map(|(uid, _)| uid)
    }

    /// The home of the store's half of installs.
    pub fn store_home(&self) -> &Path {
        &self.store_home
    }

    /// A fresh path for one install's egress socket: short (a socket's path holds at most 107
    /// bytes, and workspaces can be deep), in a folder of this daemon's, bound into the
    /// sandbox at a fixed place.
    pub fn egress_socket(&self) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        egress_dir().join(format!("{}-{n}.sock", std::process::id()))
    }
}

/// The package.json files of the packages an install put in a project's `node_modules/.pnpm`
/// (found by [`Confinement::take_back`]'s walk, read only if the build's half runs).
#[derive(Debug, Default)]
pub struct InstalledPackages {
    manifests: Vec<PathBuf>,
}

/// Where egress sockets are made: `/run/kiln-egress` for a root daemon, else a folder of its
/// user's under the temporary folder. Builds reach the socket only through its bind.
fn egress_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() && Path::new("/run").is_dir() {
        PathBuf::from("/run/kiln-egress")
    } else {
        std::env::temp_dir().join(format!("kiln-egress-{}", nix::unistd::geteuid()))
    }
}
