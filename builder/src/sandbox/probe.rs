//! How the daemon decides, once at start-up, how builds are confined here ([`Confinement::probe`]):
//! which tools and kernel features there are (bubblewrap, `prlimit`, `setpriv`, cgroups, the
//! build users), the shared folders prepared for them, and the line that says so
//! ([`Confinement::describe`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_shared::config::{Egress, SandboxMode, Settings};

use super::cgroup::CgroupRoot;
use super::users::UidPool;
use super::{egress, egress_dir, Confinement, Identity, SandboxError};

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
            settings.builder.pnpm_store.clone(),
            settings.builder.pnpm_store.with_extension("cache"),
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
            store_home: settings.builder.work_dir.join(".kiln-store-home"),
            allowed_scripts: settings.builder.work_dir.join(".kiln-allowed-build-scripts.json"),
            egress: None,
            packages: Default::default(),
        };
        me.prepare_folders(settings)?;
        me.link_root = link_root(&settings.builder.work_dir, &me.shared_rw);
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
                store = %settings.builder.pnpm_store.display(),
                work = %settings.builder.work_dir.display(),
                "KILN_PNPM_STORE is not inside KILN_WORK_DIR: in the sandbox they are two mounts, so pnpm copies packages instead of hard-linking them (installs are several times slower); keep the store inside the work folder (the default)"
            );
        }
        me.egress = match (&me.bwrap, &me.limits.egress) {
            (Some(_), Egress::Allow(hosts)) => {
                let bridge = settings.builder.work_dir.join(".kiln-egress-bridge.js");
                let registry = settings.packages.enabled.then_some(crate::packages::REGISTRY_URL);
                write_bridge(&bridge, registry)?;
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
        std::fs::create_dir_all(&settings.builder.work_dir).map_err(io(&settings.builder.work_dir))?;
        for dir in self.shared_rw.iter().chain([&self.store_home]) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let list = serde_json::to_vec(&self.limits.allow_build_scripts).expect("strings serialize");
        write_public(&self.allowed_scripts, &list)?;
        let Some((uid, gid)) = self.store_user else {
            return Ok(());
        };
        std::fs::set_permissions(&settings.builder.work_dir, std::fs::Permissions::from_mode(0o711))
            .map_err(io(&settings.builder.work_dir))?;
        for dir in self.shared_rw.iter().chain([&self.store_home]) {
            hand_over_if_needed(dir, uid, gid).map_err(io(dir))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        }
        for (what, dir) in [
            ("KILN_WORK_DIR", &settings.builder.work_dir),
            ("KILN_PNPM_STORE", &settings.builder.pnpm_store),
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
/// into their sandboxes), pointing pnpm at `registry` (the package cache) when given.
fn write_bridge(path: &Path, registry: Option<&str>) -> Result<(), SandboxError> {
    write_public(path, egress::bridge_js(registry).as_bytes())
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
