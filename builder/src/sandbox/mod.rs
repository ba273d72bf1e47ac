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

pub mod cgroup;
pub mod egress;
pub mod users;
pub mod warm;
pub mod watch;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_shared::config::{AllowedHost, Egress, SandboxMode, SandboxSettings, Settings};

use self::cgroup::{BuildCgroup, CgroupRoot};
use self::users::{BuildUser, UidPool};

/// Sets the umask given first, joins the cgroups named before `--`, then execs the rest.
const JOIN_CGROUPS: &str = r#"umask "$1"; shift; while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@""#;

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

/// Files of `/etc` a build may read: name resolution, certificates, users, time zone.
const ETC_FILES: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/pki",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/alternatives",
    "/etc/os-release",
    "/etc/npmrc",
];

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
}

/// Where the egress bridge is inside the sandbox.
const BRIDGE_IN_SANDBOX: &str = "/run/kiln/egress-bridge.js";
/// Where the egress proxy's socket is inside the sandbox.
const SOCKET_IN_SANDBOX: &str = "/run/kiln/egress.sock";

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

/// What one build's commands need: its cgroup, its user and its workspace; and the warm
/// sandbox its install may start in ([`warm`]).
#[derive(Debug)]
pub struct Cell {
    pub cgroup: Option<BuildCgroup>,
    /// The uid the build runs as (none when the daemon cannot switch users).
    pub user: Option<Arc<BuildUser>>,
    pub workspace: PathBuf,
    warm: std::sync::Mutex<Option<warm::WarmChild>>,
    /// Whether any command ran in it (a warm sandbox is given back only when none did).
    ran: std::sync::atomic::AtomicBool,
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

/// One of the tools that confine builds, found in the system's folders.
fn find(program: &str) -> Option<PathBuf> {
    crate::which::find_on_path(crate::which::SYSTEM_PATH, program)
}

impl Confinement {
    /// Decides how builds are confined here and prepares for it; every fallback is logged as
    /// a warning, and `KILN_SANDBOX=bwrap` without working namespaces is an error.
    pub async fn probe(settings: &Settings) -> Result<Self, SandboxError> {
        let limits = settings.sandbox.clone();
        let root = nix::unistd::geteuid().is_root();
        let setpriv = find("setpriv");
        let switch_users = match (root, &setpriv) {
            (true, Some(_)) => true,
            (true, None) => {
                tracing::warn!("setpriv (util-linux) is missing: builds run as root, confined only by namespaces and limits");
                false
            }
            (false, _) => {
                tracing::warn!(
                    uid = nix::unistd::geteuid().as_raw(),
                    "the daemon is not root, so builds run as its own user, and share the pnpm store with it: run kiln-builder as root"
                );
                false
            }
        };
        let users = if switch_users {
            let dir = UidPool::default_dir();
            Some(
                UidPool::new(limits.build_uids, &dir)
                    .map_err(|source| SandboxError::Io { path: dir, source })?,
            )
        } else {
            None
        };
        let store_user = switch_users.then_some(limits.store_user);
        let prlimit = find("prlimit");
        if prlimit.is_none() {
            tracing::warn!("prlimit (util-linux) is missing: builds run without per-process CPU, open-file and file-size limits");
        }
        let cgroups = if !limits.cgroups {
            tracing::warn!("KILN_BUILD_CGROUPS=off: memory is watched per process tree, CPU and processes are limited per process and per user");
            None
        } else if !root {
            tracing::warn!("builds get no cgroup (the daemon is not root): memory is watched per process tree, CPU and processes are limited per process and per user");
            None
        } else {
            match CgroupRoot::detect("kiln-builds") {
                Ok(found) => Some(found),
                Err(e) => {
                    tracing::warn!(error = %e, "builds get no cgroup: memory is watched per process tree, CPU and processes are limited per process and per user");
                    None
                }
            }
        };
        let shared_rw = vec![
            settings.pnpm_store.clone(),
            settings.pnpm_store.with_extension("cache"),
        ];
        let mut me = Self {
            limits,
            bwrap: None,
            users,
            store_user,
            cgroups,
            prlimit,
            setpriv,
            shared_rw,
            link_root: None,
            store_home: settings.work_dir.join(".kiln-store-home"),
            allowed_scripts: settings.work_dir.join(".kiln-allowed-build-scripts.json"),
            egress: None,
        };
        me.prepare_folders(settings)?;
        me.link_root = link_root(&settings.work_dir, &me.shared_rw);
        me.bwrap = match me.limits.mode {
            SandboxMode::Off => {
                tracing::warn!("KILN_SANDBOX=off: builds run without namespaces");
                None
            }
            mode => match me.try_namespaces().await {
                Ok(bwrap) => Some(bwrap),
                Err(reason) if mode == SandboxMode::Required => {
                    return Err(SandboxError::NamespacesRequired(reason));
                }
                Err(reason) => {
                    tracing::warn!(%reason, "builds run WITHOUT namespaces (bubblewrap does not work here): only the build user and the limits confine them");
                    None
                }
            },
        };
        if me.bwrap.is_some() && me.link_root.is_none() {
            tracing::warn!(
                store = %settings.pnpm_store.display(),
                work = %settings.work_dir.display(),
                "KILN_PNPM_STORE is not inside KILN_WORK_DIR: in the sandbox they are two mounts, so pnpm copies packages instead of hard-linking them (installs are several times slower); keep the store inside the work folder (the default)"
            );
        }
        me.egress = match (&me.bwrap, &me.limits.egress) {
            (Some(_), Egress::Allow(hosts)) => {
                let bridge = settings.work_dir.join(".kiln-egress-bridge.js");
                write_bridge(&bridge)?;
                make_egress_dir()?;
                Some((Arc::new(hosts.clone()), bridge))
            }
            (Some(_), Egress::HostNetwork) => {
                tracing::warn!("KILN_EGRESS_ALLOW=host-network: installs share the host's network (install scripts reach what the host reaches)");
                None
            }
            (None, _) => {
                tracing::warn!("without namespaces, installs share the host's network (install scripts reach what the host reaches)");
                None
            }
        };
        tracing::info!(sandbox = %me.describe(), "build confinement");
        Ok(me)
    }

    /// A line for logs and the fleet view, e.g. `namespaces (bwrap), a user per build
    /// (200000-200255), store 199999:199999, cgroup v1, rlimits`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        parts.push(if self.bwrap.is_some() {
            "namespaces (bwrap)".to_owned()
        } else {
            "no namespaces".to_owned()
        });
        parts.push(match (&self.users, self.store_user) {
            (Some(_), Some((uid, gid))) => {
                let uids = self.limits.build_uids;
                format!(
                    "a user per build ({}-{}), store {uid}:{gid}",
                    uids.first,
                    uids.first + uids.count - 1
                )
            }
            _ => "the daemon's user".to_owned(),
        });
        parts.push(match &self.cgroups {
            Some(root) => root.describe().to_owned(),
            None => "no cgroup (memory watched)".to_owned(),
        });
        if self.prlimit.is_some() {
            parts.push("rlimits".to_owned());
        }
        parts.push(match &self.egress {
            Some((hosts, _)) => format!(
                "install egress {}",
                hosts
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            None => "install on the host's network".to_owned(),
        });
        parts.join(", ")
    }

    /// The work folder is searchable but not listable by builds; the pnpm store, its cache and
    /// the store's home belong to the store's user, and no one else may enter them. Every
    /// folder the store's user needs must be reachable by it.
    fn prepare_folders(&self, settings: &Settings) -> Result<(), SandboxError> {
        use std::os::unix::fs::PermissionsExt;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SandboxError::Io { path, source }
        };
        std::fs::create_dir_all(&settings.work_dir).map_err(io(&settings.work_dir))?;
        for dir in self.shared_rw.iter().chain([&self.store_home]) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let list = serde_json::to_vec(&self.limits.allow_build_scripts).expect("strings serialize");
        write_public(&self.allowed_scripts, &list)?;
        let Some((uid, gid)) = self.store_user else {
            return Ok(());
        };
        std::fs::set_permissions(&settings.work_dir, std::fs::Permissions::from_mode(0o711))
            .map_err(io(&settings.work_dir))?;
        for dir in self.shared_rw.iter().chain([&self.store_home]) {
            hand_over_if_needed(dir, uid, gid).map_err(io(dir))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        }
        for (what, dir) in [
            ("KILN_WORK_DIR", &settings.work_dir),
            ("KILN_PNPM_STORE", &settings.pnpm_store),
        ] {
            reachable(dir, uid, gid).map_err(|reason| SandboxError::Unreachable {
                uid,
                what,
                path: dir.clone(),
                reason,
            })?;
        }
        Ok(())
    }

    /// Runs `bwrap … true` as builds would: Ok(bwrap's path) when namespaces work.
    async fn try_namespaces(&self) -> Result<PathBuf, String> {
        let bwrap = find("bwrap").ok_or("bubblewrap (bwrap) is not installed")?;
        let mut argv = self.bwrap_args(&bwrap, Path::new("/"), &[], &[], true);
        argv.push("/bin/true".into());
        let argv = self.around(argv, None, Identity::Store);
        let out = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run bwrap: {e}"))?;
        if out.status.success() {
            Ok(bwrap)
        } else {
            Err(format!(
                "bwrap failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

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
    /// build's has run since the store's half: links are changed, never followed.
    pub fn take_back(&self, project: &Path, ids: Option<(u32, u32)>) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let (Some((store_uid, _)), Some((uid, gid))) = (self.store_user, ids) else {
            return Ok(());
        };
        for entry in walkdir::WalkDir::new(project).follow_links(false) {
            let entry = entry.map_err(std::io::Error::other)?;
            let meta = entry.metadata().map_err(std::io::Error::other)?;
            if meta.uid() == store_uid && (!meta.is_file() || meta.nlink() == 1) {
                std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
            }
        }
        Ok(())
    }

    /// The allowed hosts when installs go through the egress proxy (else they share the host's
    /// network).
    pub fn egress(&self) -> Option<&Arc<Vec<AllowedHost>>> {
        self.egress.as_ref().map(|(hosts, _)| hosts)
    }

    /// Who owns the egress socket of a command run as `identity` in `cell`: only that user
    /// can connect to it.
    pub fn socket_owner(&self, cell: &Cell, identity: Identity) -> Option<(u32, u32)> {
        match identity {
            Identity::Store => self.store_user,
            Identity::Build => cell.ids(),
        }
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

    /// The argv running `program` (already resolved) with `args` in `cwd` confined for
    /// `cell`. With [`Network::Registry`] and an egress proxy, `proxied` is `(node, the
    /// proxy's socket)`: the command runs under the bridge, in a namespace with no network.
    #[allow(clippy::too_many_arguments)]
    pub fn wrap(
        &self,
        cell: &Cell,
        identity: Identity,
        program: &Path,
        args: &[&str],
        cwd: &Path,
        network: Network,
        proxied: Option<(&Path, &Path)>,
    ) -> Vec<OsString> {
        let mut inner: Vec<OsString> = match &self.bwrap {
            Some(bwrap) => {
                let (shared, read_only) = match (identity, &self.link_root) {
                    (Identity::Store, Some(root)) => (vec![root.clone()], vec![]),
                    (Identity::Store, None) => {
                        let mut shared = self.shared_rw.clone();
                        shared.push(self.store_home.clone());
                        shared.push(cell.workspace.clone());
                        (shared, vec![])
                    }
                    (Identity::Build, _) => (
                        vec![cell.workspace.clone()],
                        vec![(
                            self.allowed_scripts.clone(),
                            PathBuf::from(ALLOWED_SCRIPTS_IN_SANDBOX),
                        )],
                    ),
                };
                let host_network = match network {
                    Network::None => false,
                    Network::Host => true,
                    Network::Registry => proxied.is_none() || self.egress.is_none(),
                };
                let mut argv = self.bwrap_args(bwrap, cwd, &shared, &read_only, host_network);
                match (&self.egress, proxied) {
                    (Some((_, bridge)), Some((node, socket))) if network == Network::Registry => {
                        argv.truncate(argv.len() - 1); // the final `--`
                        argv.extend([
                            "--ro-bind".into(),
                            bridge.into(),
                            BRIDGE_IN_SANDBOX.into(),
                            "--bind".into(),
                            socket.into(),
                            SOCKET_IN_SANDBOX.into(),
                            "--".into(),
                            node.into(),
                            BRIDGE_IN_SANDBOX.into(),
                            SOCKET_IN_SANDBOX.into(),
                            egress::BRIDGE_PORT.to_string().into(),
                        ]);
                    }
                    _ => {}
                }
                argv.push(program.into());
                argv
            }
            None => vec![program.into()],
        };
        inner.extend(args.iter().map(OsString::from));
        self.around(inner, Some(cell), identity)
    }

    /// Where the operator's list of allowed build scripts is, for a command run as
    /// `Identity::Build` (inside the sandbox when there is one).
    pub fn allowed_scripts(&self) -> PathBuf {
        match &self.bwrap {
            Some(_) => PathBuf::from(ALLOWED_SCRIPTS_IN_SANDBOX),
            None => self.allowed_scripts.clone(),
        }
    }

    /// `sh` (umask, cgroup) → `prlimit` → `setpriv` around `inner`.
    fn around(&self, inner: Vec<OsString>, cell: Option<&Cell>, identity: Identity) -> Vec<OsString> {
        let mut argv: Vec<OsString> = Vec::new();
        let cgroup = cell.and_then(|c| c.cgroup.as_ref());
        if cgroup.is_some() || identity == Identity::Store {
            argv.extend([
                "/bin/sh".into(),
                "-c".into(),
                JOIN_CGROUPS.into(),
                "kiln-sandbox".into(),
                // What the store's half creates in the workspace stays writable by the build's
                // group; the store's own files get no write bit for others either way.
                if identity == Identity::Store { "002" } else { "022" }.into(),
            ]);
            if let Some(cgroup) = cgroup {
                argv.extend(cgroup.procs_files().into_iter().map(OsString::from));
            }
            argv.push("--".into());
        }
        if let Some(prlimit) = &self.prlimit {
            let l = &self.limits;
            let disk = l.disk_mb * 1024 * 1024;
            argv.push(prlimit.into());
            // The soft CPU limit sends SIGXCPU (a process may say why it stops); the hard one,
            // 5 s later, SIGKILL.
            argv.push(format!("--cpu={}:{}", l.cpu_secs, l.cpu_secs + 5).into());
            argv.push(format!("--nofile={0}:{0}", l.open_files).into());
            argv.push(format!("--fsize={disk}:{disk}").into());
            if self.cgroups.is_none() && self.users.is_some() {
                // Without a pids cgroup: processes per user (the build user's, on this host).
                argv.push(format!("--nproc={0}:{0}", l.max_procs).into());
            }
            argv.push("--".into());
        }
        let build = cell.and_then(Cell::ids);
        let user = match identity {
            Identity::Store => self.store_user.map(|ids| (ids, build.map(|(_, gid)| gid))),
            Identity::Build => build.map(|ids| (ids, None)),
        };
        if let (Some(((uid, gid), group)), Some(setpriv)) = (user, &self.setpriv) {
            argv.push(setpriv.into());
            argv.push(format!("--reuid={uid}").into());
            argv.push(format!("--regid={gid}").into());
            match group {
                Some(group) => argv.push(format!("--groups={group}").into()),
                None => argv.push("--clear-groups".into()),
            }
            argv.push("--".into());
        }
        argv.extend(inner);
        argv
    }

    fn bwrap_args(
        &self,
        bwrap: &Path,
        cwd: &Path,
        writable: &[PathBuf],
        read_only: &[(PathBuf, PathBuf)],
        network: bool,
    ) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec![bwrap.into()];
        let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
        push(&["--unshare-all", "--die-with-parent", "--hostname", "kiln-build"]);
        if network {
            push(&["--share-net"]);
        }
        push(&["--ro-bind", "/usr", "/usr"]);
        for dir in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            match std::fs::read_link(dir) {
                Ok(target) => a.extend(["--symlink".into(), target.into(), dir.into()]),
                Err(_) if Path::new(dir).is_dir() => a.extend(["--ro-bind".into(), dir.into(), dir.into()]),
                Err(_) => {}
            }
        }
        let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
        push(&["--ro-bind-try", "/opt", "/opt"]);
        for file in ETC_FILES {
            push(&["--ro-bind-try", file, file]);
        }
        push(&[
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run",
        ]);
        for dir in writable {
            a.extend(["--bind".into(), dir.into(), dir.into()]);
        }
        for (from, to) in read_only {
            a.extend(["--ro-bind".into(), from.into(), to.into()]);
        }
        a.extend(["--chdir".into(), cwd.into(), "--".into()]);
        a
    }
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

/// Makes the egress folder: traversable (bubblewrap, as the build user, opens the socket's
/// path to bind it), not listable.
fn make_egress_dir() -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = egress_dir();
    let io = |source| SandboxError::Io {
        path: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).map_err(io)
}

/// The work folder, when every shared folder is inside it (compared as resolved paths).
fn link_root(work_dir: &Path, shared: &[PathBuf]) -> Option<PathBuf> {
    let root = work_dir.canonicalize().ok()?;
    shared
        .iter()
        .all(|dir| {
            dir.canonicalize()
                .is_ok_and(|d| d.starts_with(&root) && d != root)
        })
        .then_some(root)
}

/// Writes the egress bridge where the daemon keeps it (readable by builds, bound read-only
/// into their sandboxes).
fn write_bridge(path: &Path) -> Result<(), SandboxError> {
    write_public(path, egress::BRIDGE_JS.as_bytes())
}

/// Writes a file of the daemon's that builds may read (bound read-only into their sandboxes),
/// whole or not at all.
fn write_public(path: &Path, content: &[u8]) -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| SandboxError::Io {
        path: path.to_owned(),
        source,
    };
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::write(&partial, content).map_err(io)?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644)).map_err(io)?;
    std::fs::rename(&partial, path).map_err(io)
}

/// Chowns `dir` (and all in it) to `uid:gid` unless it already belongs to them.
fn hand_over_if_needed(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)?;
    if meta.uid() == uid && meta.gid() == gid {
        return Ok(());
    }
    tracing::info!(dir = %dir.display(), uid, gid, "handing a shared build folder to the build user");
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.map_err(std::io::Error::other)?;
        std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
    }
    Ok(())
}

/// Whether `uid:gid` (not root) can search every folder on the way to `dir`.
fn reachable(dir: &Path, uid: u32, gid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let dir = dir.canonicalize().map_err(|e| e.to_string())?;
    for ancestor in dir.ancestors().skip(1) {
        let meta = std::fs::metadata(ancestor).map_err(|e| format!("{}: {e}", ancestor.display()))?;
        let mode = meta.mode();
        let ok = if meta.uid() == uid {
            mode & 0o100 != 0
        } else if meta.gid() == gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Err(format!(
                "{} (mode {:o}) is not searchable by it: give it o+x or move the folder",
                ancestor.display(),
                mode & 0o7777
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_behind_a_private_parent_is_unreachable_and_the_message_names_the_parent() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        let inner = private.join("work");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = reachable(&inner, 65534, 65534).unwrap_err();
        assert!(err.contains(&private.display().to_string()), "{err}");
        assert!(err.contains("mode 700"), "{err}");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o711)).unwrap();
        // /tmp and / are searchable by everyone.
        reachable(&inner, 65534, 65534).unwrap();
    }
}
