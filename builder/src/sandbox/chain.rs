//! The exec chain a confined command becomes, with no code of Kiln's in the child: `sh` (the
//! umask, joining the cgroup) → `prlimit` → `setpriv` (the user) → `bwrap` (the namespaces and
//! the mounts; under the egress bridge for an install reaching the registry) → the command.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{egress, Cell, Confinement, Identity, Network, ALLOWED_SCRIPTS_IN_SANDBOX};

/// Sets the umask given first, joins the cgroups named before `--`, then execs the rest.
const JOIN_CGROUPS: &str = r#"umask "$1"; shift; while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@""#;

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

/// Where the egress bridge is inside the sandbox.
const BRIDGE_IN_SANDBOX: &str = "/run/kiln/egress-bridge.js";
/// Where the egress proxy's socket is inside the sandbox.
const SOCKET_IN_SANDBOX: &str = "/run/kiln/egress.sock";

impl Confinement {
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
    pub(super) fn around(
        &self,
        inner: Vec<OsString>,
        cell: Option<&Cell>,
        identity: Identity,
    ) -> Vec<OsString> {
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

    pub(super) fn bwrap_args(
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
