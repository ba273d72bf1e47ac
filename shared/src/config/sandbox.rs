//! How untrusted build processes are confined and limited (`KILN_SANDBOX`, `KILN_BUILD_*`,
//! `KILN_EGRESS_ALLOW`).

use super::source::{ConfigError, Source};

use super::definition::{section, Fallback, Kind, Variable, BUILDER};

section! {
    title: "Sandbox",
    intro: "How untrusted build processes are confined and limited (docs/design/sandbox.md).",
    SANDBOX = Variable::new(
        "KILN_SANDBOX",
        Kind::OneOf(&["auto", "bwrap", "off"]),
        Fallback::Value("auto"),
        BUILDER,
        "whether builds run in namespaces of their own (bubblewrap)",
    )
    .details(
        "`auto`: where the kernel allows, else the builder warns at start-up and confines them \
         by user and limits alone; `bwrap`: namespaces or the builder refuses to start; `off`: \
         no namespaces.",
    )
    .example("bwrap");
    BUILD_UIDS = Variable::new(
        "KILN_BUILD_UIDS",
        Kind::Format("`first-last` (1000 or more)"),
        Fallback::Value("200000-200255"),
        BUILDER,
        "the uids builds run as when the builder runs as root, one per running build",
    )
    .details(
        "Each build holds one no other build on the host holds (every daemon of the host shares \
         the range; the group is the same number; no supplementary groups). A builder that is \
         not root runs builds as itself and says so.",
    );
    BUILD_USER = Variable::new(
        "KILN_BUILD_USER",
        Kind::Refused,
        Fallback::Otherwise("(refused)"),
        BUILDER,
        "refused (the binary stops naming it): replaced by `KILN_BUILD_UIDS`",
    )
    .details("One user for every build is replaced by a range, so each build runs as a uid of its own.");
    STORE_USER = Variable::new(
        "KILN_STORE_USER",
        Kind::Format("`uid:gid` (not 0)"),
        Fallback::Value("199999:199999"),
        BUILDER,
        "the user that alone owns the pnpm store and runs the trusted half of each install",
    )
    .details(
        "The trusted half is `pnpm install --ignore-scripts --ignore-pnpmfile` (no project or \
         dependency code). It must not be in `KILN_BUILD_UIDS`.",
    );
    ALLOW_BUILD_SCRIPTS = Variable::new(
        "KILN_ALLOW_BUILD_SCRIPTS",
        Kind::Format("package names, comma-separated, or `none`"),
        Fallback::Value("sharp,@swc/core,better-sqlite3"),
        BUILDER,
        "dependencies whose build scripts run, as the build's own uid",
    )
    .details(
        "They run after the trusted half of the install, so they change only the build's own \
         tree; a project's own `onlyBuiltDependencies` is honoured the same way. `esbuild` and \
         `@tailwindcss/oxide` work without theirs.",
    );
    BUILD_CPU_SECS = Variable::new(
        "KILN_BUILD_CPU_SECS",
        Kind::Positive,
        Fallback::Value("300"),
        BUILDER,
        "CPU seconds of a whole build, all its processes together",
    )
    .details(
        "A breach of this or the other per-build limits kills the build's whole process tree and \
         fails it with the limit named (`memory limit 2048 MB exceeded`).",
    );
    BUILD_MEMORY_MB = Variable::new(
        "KILN_BUILD_MEMORY_MB",
        Kind::Positive,
        Fallback::Value("2048"),
        BUILDER,
        "memory of a whole build, in MB",
    );
    BUILD_MAX_PROCS = Variable::new(
        "KILN_BUILD_MAX_PROCS",
        Kind::Positive,
        Fallback::Value("512"),
        BUILDER,
        "processes and threads a build may have at once",
    );
    BUILD_MAX_OPEN_FILES = Variable::new(
        "KILN_BUILD_MAX_OPEN_FILES",
        Kind::Positive,
        Fallback::Value("4096"),
        BUILDER,
        "open files per build process",
    );
    BUILD_DISK_MB = Variable::new(
        "KILN_BUILD_DISK_MB",
        Kind::Positive,
        Fallback::Value("4096"),
        BUILDER,
        "disk a build's workspace may use, in MB (files shared with the pnpm store not counted)",
    );
    BUILD_CGROUPS = Variable::new(
        "KILN_BUILD_CGROUPS",
        Kind::Switch,
        Fallback::Value("on"),
        BUILDER,
        "a cgroup per build (v2, or v1 memory/pids/cpuacct) where the builder may make them",
    )
    .details(
        "`off` (or none available): memory is watched per process tree, processes are limited \
         per user.",
    );
    EGRESS_ALLOW = Variable::new(
        "KILN_EGRESS_ALLOW",
        Kind::Format("`host[:port]` or registry URLs, comma-separated; or `host-network`"),
        Fallback::Value("registry.npmjs.org:443"),
        BUILDER,
        "where `pnpm install` and install scripts may connect, through the builder's egress proxy",
    )
    .details(
        "`*.example.com` for subdomains; everything else, DNS included, is unreachable and \
         refused with a line in the build log. `host-network`: installs share the host's \
         network.",
    );
    WARM_SANDBOXES = Variable::new(
        "KILN_WARM_SANDBOXES",
        Kind::Switch,
        Fallback::Value("on"),
        BUILDER,
        "whether each worker slot keeps an install sandbox started ahead of its build",
    )
    .details(
        "An install then starts within a millisecond instead of after the sandbox's own \
         start-up (about 60 ms). Needs the pnpm store inside the work folder (the default); \
         costs one idle `node` (about 40 MB) per slot. `GET /v1/builders` shows \
         `warmSandboxes`, `/metrics` `kiln_install_starts_total{sandbox=\"warm\"|\"cold\"}`.",
    );
}

/// Whether builds run in their own namespaces (`KILN_SANDBOX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// Namespaces with bubblewrap when it works here; else, said loudly at start-up, the
    /// unprivileged user and the limits alone (the default).
    Auto,
    /// Namespaces or nothing: a builder where bubblewrap does not work refuses to start.
    Required,
    /// No namespaces (the unprivileged user and the limits still apply).
    Off,
}

/// The confinement and limits of every build process (defaults from the seeds: 5 min CPU,
/// 1 GB memory; the output's cap is `max_output_bytes`, the log's `max_log_bytes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSettings {
    pub mode: SandboxMode,
    /// The uids builds run as when the daemon runs as root (`KILN_BUILD_UIDS`, `first-last`,
    /// default `200000-200255`): each build takes one no other build on the host holds (its
    /// group is the same number), so builds running at once never share a user. A daemon that
    /// is not root cannot change user: its builds run as itself, and it says so at start-up.
    pub build_uids: BuildUids,
    /// The user that owns the shared pnpm store and its metadata cache and runs the trusted
    /// half of every install, `pnpm install --ignore-scripts` (`KILN_STORE_USER`, `uid:gid`,
    /// default `199999:199999`): no build's code ever runs as it.
    pub store_user: (u32, u32),
    /// Dependencies whose build scripts run (`KILN_ALLOW_BUILD_SCRIPTS`, comma-separated
    /// package names; default `sharp,@swc/core,better-sqlite3`): as the build's own user, after
    /// the trusted half of the install, so they change only the build's own tree.
    pub allow_build_scripts: Vec<String>,
    /// CPU time of a whole build, all its processes together (`KILN_BUILD_CPU_SECS`, 300).
    pub cpu_secs: u64,
    /// Memory of a whole build (`KILN_BUILD_MEMORY_MB`, 2048: pnpm alone takes about 1 GB on
    /// a cold install of Create React App's or Docusaurus's 1,300-1,500 packages).
    pub memory_mb: u64,
    /// Processes (and threads) a build may have at once (`KILN_BUILD_MAX_PROCS`, 512).
    pub max_procs: u64,
    /// Open files per process (`KILN_BUILD_MAX_OPEN_FILES`, 4096).
    pub open_files: u64,
    /// Disk a build's workspace may use, files it shares with the pnpm store not counted
    /// (`KILN_BUILD_DISK_MB`, 4096).
    pub disk_mb: u64,
    /// Whether builds get a cgroup of their own where the machine allows (`KILN_BUILD_CGROUPS`,
    /// on): the memory, process and CPU limits then hold for the build as a whole; without,
    /// memory is watched (resident size of the build's processes) and CPU and processes are
    /// per-process and per-user limits.
    pub cgroups: bool,
    /// Where installs may connect (`KILN_EGRESS_ALLOW`).
    pub egress: Egress,
    /// Whether the daemon keeps an install sandbox started ahead of time per worker slot
    /// (`KILN_WARM_SANDBOXES`, on): a build's install then starts within a millisecond
    /// instead of after the sandbox's own start-up (tens of ms).
    pub warm: bool,
}

/// Dependencies whose build scripts run unless `KILN_ALLOW_BUILD_SCRIPTS` says otherwise: the
/// ones that do not work without them (a native binary built or fetched by the script).
/// `esbuild` and `@tailwindcss/oxide` are not in it: both work without theirs, and a build with
/// no script to run is spared the second pnpm start.
pub const DEFAULT_BUILD_SCRIPTS: &[&str] = &["sharp", "@swc/core", "better-sqlite3"];

/// The uids builds run as: `first`, `first + 1`, … (`count` of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildUids {
    pub first: u32,
    pub count: u32,
}

impl BuildUids {
    fn parse(raw: &str) -> Option<Self> {
        let (first, last) = raw.trim().split_once('-')?;
        let (first, last): (u32, u32) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
        (first >= 1000 && first <= last && last < u32::MAX).then(|| Self {
            first,
            count: last - first + 1,
        })
    }

    pub fn contains(&self, id: u32) -> bool {
        id >= self.first && id - self.first < self.count
    }
}

/// Package names, comma-separated (`name` or `@scope/name`); empty or `none` for none.
fn parse_package_names(raw: &str) -> Result<Vec<String>, String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    raw.split(',')
        .map(str::trim)
        .map(|name| {
            let bare = name.strip_prefix('@').map_or(Some(name), |scoped| {
                scoped
                    .split_once('/')
                    .map(|(scope, n)| if scope.is_empty() { "" } else { n })
            });
            let ok = |s: &str| {
                !s.is_empty()
                    && s.len() <= 214
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
            };
            match bare {
                Some(n) if ok(n) && name.len() <= 214 => Ok(name.to_owned()),
                _ => Err(format!("{name:?} is not an npm package name")),
            }
        })
        .collect()
}

impl SandboxSettings {
    pub(super) fn load(src: &Source) -> Result<Self, ConfigError> {
        let settings = Self {
            mode: match src.value(&SANDBOX).map(|v| v.trim().to_ascii_lowercase()) {
                None => SandboxMode::Auto,
                Some(v) if v == "auto" => SandboxMode::Auto,
                Some(v) if v == "bwrap" || v == "required" => SandboxMode::Required,
                Some(v) if v == "off" => SandboxMode::Off,
                Some(v) => {
                    return Err(ConfigError::Invalid {
                        var: SANDBOX.name,
                        reason: format!("expected auto, bwrap or off, got {v:?}"),
                    })
                }
            },
            build_uids: match (src.value(&BUILD_UIDS), src.get(&BUILD_USER)) {
                (_, Some(_)) => {
                    return Err(ConfigError::Invalid {
                        var: BUILD_USER.name,
                        reason: "replaced by KILN_BUILD_UIDS (a range, first-last: each build runs as a uid of its own)".into(),
                    })
                }
                (None, None) => BuildUids {
                    first: 200_000,
                    count: 256,
                },
                (Some(raw), None) => BuildUids::parse(&raw).ok_or_else(|| ConfigError::Invalid {
                    var: BUILD_UIDS.name,
                    reason: format!("expected first-last (numbers, 1000 or more, first <= last), got {raw:?}"),
                })?,
            },
            store_user: match src.value(&STORE_USER) {
                None => (199_999, 199_999),
                Some(raw) => parse_user(&raw).ok_or_else(|| ConfigError::Invalid {
                    var: STORE_USER.name,
                    reason: format!("expected uid:gid (numbers, not 0), got {raw:?}"),
                })?,
            },
            allow_build_scripts: match src.value(&ALLOW_BUILD_SCRIPTS) {
                None => DEFAULT_BUILD_SCRIPTS.iter().map(|s| (*s).to_owned()).collect(),
                Some(raw) => parse_package_names(&raw).map_err(|reason| ConfigError::Invalid {
                    var: ALLOW_BUILD_SCRIPTS.name,
                    reason,
                })?,
            },
            cpu_secs: src.positive(&BUILD_CPU_SECS)?,
            memory_mb: src.positive(&BUILD_MEMORY_MB)?,
            max_procs: src.positive(&BUILD_MAX_PROCS)?,
            open_files: src.positive(&BUILD_MAX_OPEN_FILES)?,
            disk_mb: src.positive(&BUILD_DISK_MB)?,
            cgroups: src.switch(&BUILD_CGROUPS)?,
            warm: src.switch(&WARM_SANDBOXES)?,
            egress: match src.value(&EGRESS_ALLOW) {
                None => Egress::default(),
                Some(raw) => Egress::parse(&raw).map_err(|reason| ConfigError::Invalid {
                    var: EGRESS_ALLOW.name,
                    reason,
                })?,
            },
        };
        let (store_uid, store_gid) = settings.store_user;
        if settings.build_uids.contains(store_uid) || settings.build_uids.contains(store_gid) {
            return Err(ConfigError::Invalid {
                var: STORE_USER.name,
                reason: "the store's user and group must not be among KILN_BUILD_UIDS (a build would own the store)".into(),
            });
        }
        Ok(settings)
    }
}

/// Where `pnpm install` (and the project's install scripts) may connect (`KILN_EGRESS_ALLOW`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Egress {
    /// Through Kiln's egress proxy, to these hosts and ports only (default:
    /// `registry.npmjs.org:443`); nothing else, not even DNS.
    Allow(Vec<AllowedHost>),
    /// The host's network, as it is (`host-network`): what the host reaches, an install script
    /// reaches. For registries the proxy cannot serve.
    HostNetwork,
}

/// A host a build may reach during install: an exact name (lower case) or `*.suffix`, and a
/// port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    pub host: String,
    pub port: u16,
}

impl Default for Egress {
    fn default() -> Self {
        Egress::Allow(vec![AllowedHost {
            host: "registry.npmjs.org".into(),
            port: 443,
        }])
    }
}

impl Egress {
    /// A comma-separated list of `host[:port]` (443 when no port is given) or registry URLs
    /// (`https://npm.example.com/`, `http://10.0.0.5:4873`), or `host-network`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("host-network") {
            return Ok(Egress::HostNetwork);
        }
        let mut hosts = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            hosts.push(AllowedHost::parse(item)?);
        }
        if hosts.is_empty() {
            return Err("expected host[:port] entries separated by commas, or host-network".into());
        }
        Ok(Egress::Allow(hosts))
    }
}

impl AllowedHost {
    fn parse(item: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{item:?}: {why} (expected host[:port] or a registry URL)");
        let (default_port, rest) = match item.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (443, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (80, rest),
            Some(_) => return Err(bad("only http and https registries")),
            None => (443, item),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(bad("credentials do not belong here"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (
                host,
                port.parse::<u16>().map_err(|_| bad("the port is not a number"))?,
            ),
            _ => (authority, default_port),
        };
        let name = host.strip_prefix("*.").unwrap_or(host);
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid || port == 0 {
            return Err(bad("not a host name"));
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether a CONNECT to `host:port` is allowed by this entry.
    pub fn admits(&self, host: &str, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self.host.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
            None => host == self.host,
        }
    }
}

impl std::fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

fn parse_user(raw: &str) -> Option<(u32, u32)> {
    let (uid, gid) = raw.trim().split_once(':')?;
    let (uid, gid): (u32, u32) = (uid.parse().ok()?, gid.parse().ok()?);
    (uid != 0 && gid != 0).then_some((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_entries_are_hosts_ports_or_registry_urls() {
        let Egress::Allow(hosts) = Egress::parse(
            "registry.npmjs.org, https://npm.example.com/repo/, http://10.0.0.5:4873,*.pkg.dev:8443",
        )
        .unwrap() else {
            panic!("a list");
        };
        let shown: Vec<String> = hosts.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "registry.npmjs.org:443",
                "npm.example.com:443",
                "10.0.0.5:4873",
                "*.pkg.dev:8443"
            ]
        );
        assert!(hosts[0].admits("Registry.NPMJS.org.", 443));
        assert!(!hosts[0].admits("registry.npmjs.org", 80));
        assert!(!hosts[0].admits("registry.npmjs.org.evil.com", 443));
        assert!(hosts[3].admits("eu.pkg.dev", 8443));
        assert!(!hosts[3].admits("pkg.dev", 8443));
        assert!(!hosts[3].admits("evilpkg.dev", 8443));
        assert_eq!(Egress::parse(" HOST-NETWORK ").unwrap(), Egress::HostNetwork);
        assert_eq!(
            parse_package_names("sharp, @swc/core ,esbuild").unwrap(),
            ["sharp", "@swc/core", "esbuild"]
        );
        assert!(parse_package_names("none").unwrap().is_empty());
        for bad in ["Sharp", "@/x", "a b", "@swc", "../x"] {
            assert!(parse_package_names(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            BuildUids::parse("300000-300009"),
            Some(BuildUids {
                first: 300_000,
                count: 10
            })
        );
        for bad in ["5-1", "0-10", "abc", "2000"] {
            assert!(BuildUids::parse(bad).is_none(), "{bad:?}");
        }
        for bad in [
            "",
            " , ",
            "user:pw@host",
            "ftp://host",
            "host:99999",
            "ho st",
            "a..b",
        ] {
            assert!(Egress::parse(bad).is_err(), "{bad:?}");
        }
    }
}
