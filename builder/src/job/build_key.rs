//! A build's key: the hex SHA-256 of a canonical encoding of everything that decides what a
//! build produces (its source tree, the build settings and checks on its row, its environment's
//! names and keyed value hashes, the builder's toolchain and allowed build scripts, the platform
//! and [`PIPELINE`]). Two builds with one key produce the same output, so the later one may serve
//! the earlier one's ([`super::reuse`]). Only reproducible builds have a key ([`qualifies`]).

use std::collections::BTreeMap;

use kiln_shared::domain::{BuildSettings, Checks, EnvEntry};
use kiln_shared::store::{sha256_hex, Manifest};
use serde::Serialize;

/// The version of what Kiln's stations make of a tree: bump it whenever a change to the
/// stations changes the output of a build (keys made before then stop matching).
pub const PIPELINE: u32 = 1;

/// Everything but the sources that decides a build's output.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    pub settings: &'a BuildSettings,
    pub checks: &'a Checks,
    /// The environment's snapshot (names, secret or not, keyed value hashes).
    pub env: &'a [EnvEntry],
    pub node: Option<&'a str>,
    pub pnpm: Option<&'a str>,
    /// The dependencies whose build scripts this builder runs.
    pub allowed_scripts: &'a [String],
}

/// The canonical encoding: a struct of fixed members and sorted maps, as JSON.
#[derive(Serialize)]
struct Canonical<'a> {
    pipeline: u32,
    os: &'static str,
    arch: &'static str,
    node: Option<&'a str>,
    pnpm: Option<&'a str>,
    allowed_scripts: Vec<&'a str>,
    // Only the settings that change what is built (not who may see it, or whether search
    // engines may index it: those are served from the project, whatever the build).
    install_command: Option<&'a str>,
    build_command: Option<&'a str>,
    output_dir: Option<&'a str>,
    root_dir: Option<&'a str>,
    checks: &'a Checks,
    /// name → (secret, keyed hash of the value)
    env: BTreeMap<&'a str, (bool, &'a str)>,
    /// path → content hash
    files: BTreeMap<&'a str, &'a str>,
}

/// Whether a build of `sources` is reproducible: its dependencies are pinned by a
/// `pnpm-lock.yaml` (at the top or in the app's `rootDir`), or it has no package.json at all
/// (a static site). Without a lockfile the install resolves today's versions.
pub fn qualifies(sources: &Manifest, root_dir: Option<&str>) -> bool {
    let app = |name: &str| match root_dir.map(|d| d.trim_matches('/')).filter(|d| !d.is_empty()) {
        Some(dir) => format!("{dir}/{name}"),
        None => name.to_owned(),
    };
    let has = |path: &str| sources.files.contains_key(path);
    has("pnpm-lock.yaml")
        || has(&app("pnpm-lock.yaml"))
        || (!has("package.json") && !has(&app("package.json")))
}

/// The key of a build of `sources` with `parts`; `None` when the build does not qualify: not
/// reproducible ([`qualifies`]), or an environment value without a hash (the project had no
/// key, so a changed value would go unseen).
pub fn build_key(parts: &Parts<'_>, sources: &Manifest) -> Option<String> {
    if !qualifies(sources, parts.settings.root_dir.as_deref()) {
        return None;
    }
    if parts.env.iter().any(|e| e.hash.is_empty()) {
        return None;
    }
    let mut allowed_scripts: Vec<&str> = parts.allowed_scripts.iter().map(String::as_str).collect();
    allowed_scripts.sort_unstable();
    allowed_scripts.dedup();
    let canonical = Canonical {
        pipeline: PIPELINE,
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
        node: parts.node,
        pnpm: parts.pnpm,
        allowed_scripts,
        install_command: parts.settings.install_command.as_deref(),
        build_command: parts.settings.build_command.as_deref(),
        output_dir: parts.settings.output_dir.as_deref(),
        root_dir: parts.settings.root_dir.as_deref(),
        checks: parts.checks,
        env: parts
            .env
            .iter()
            .map(|e| (e.name.as_str(), (e.secret, e.hash.as_str())))
            .collect(),
        files: sources
            .files
            .iter()
            .map(|(path, entry)| (path.as_str(), entry.hash.as_str()))
            .collect(),
    };
    let encoded = serde_json::to_vec(&canonical).expect("the canonical encoding always serialises");
    Some(sha256_hex(&encoded))
}

#[cfg(test)]
mod tests {
    use kiln_shared::domain::{BuildSettings, CheckMode, Checks, EnvEntry};
    use kiln_shared::store::{Manifest, ManifestEntry};

    use super::{build_key, qualifies, Parts};

    fn entry(hash: &str) -> ManifestEntry {
        serde_json::from_value(serde_json::json!({
            "hash": hash, "size": 1, "contentType": "text/plain"
        }))
        .unwrap()
    }

    fn tree(files: &[(&str, &str)]) -> Manifest {
        Manifest {
            files: files.iter().map(|(p, h)| ((*p).to_owned(), entry(h))).collect(),
        }
    }

    fn env(entries: &[(&str, bool, &str)]) -> Vec<EnvEntry> {
        entries
            .iter()
            .map(|(name, secret, hash)| EnvEntry {
                name: (*name).to_owned(),
                secret: *secret,
                hash: (*hash).to_owned(),
            })
            .collect()
    }

    /// A named change of one part.
    type Change = (&'static str, Box<dyn Fn(&mut Owned)>);

    struct Owned {
        settings: BuildSettings,
        checks: Checks,
        env: Vec<EnvEntry>,
        node: Option<String>,
        pnpm: Option<String>,
        allowed: Vec<String>,
        sources: Manifest,
    }

    impl Owned {
        fn base() -> Self {
            Owned {
                settings: BuildSettings::default(),
                checks: Checks::default(),
                env: env(&[("API_URL", false, "aa"), ("TOKEN", true, "bb")]),
                node: Some("22.11.0".into()),
                pnpm: Some("9.15.0".into()),
                allowed: vec!["esbuild".into(), "sharp".into()],
                sources: tree(&[
                    ("package.json", "p1"),
                    ("pnpm-lock.yaml", "l1"),
                    ("src/main.ts", "m1"),
                ]),
            }
        }

        fn key(&self) -> Option<String> {
            let parts = Parts {
                settings: &self.settings,
                checks: &self.checks,
                env: &self.env,
                node: self.node.as_deref(),
                pnpm: self.pnpm.as_deref(),
                allowed_scripts: &self.allowed,
            };
            build_key(&parts, &self.sources)
        }
    }

    #[test]
    fn the_key_is_a_sha256_and_does_not_depend_on_the_order_of_maps_and_lists() {
        let base = Owned::base().key().unwrap();
        assert_eq!(base.len(), 64);
        assert!(base
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let mut reordered = Owned::base();
        reordered.env.reverse();
        reordered.allowed.reverse();
        // A manifest built in another order is the same tree.
        let mut files: Vec<_> = reordered.sources.files.clone().into_iter().collect();
        files.reverse();
        reordered.sources = Manifest {
            files: files.into_iter().collect(),
        };
        assert_eq!(reordered.key().unwrap(), base);
    }

    #[test]
    fn each_part_changes_the_key() {
        let base = Owned::base().key().unwrap();
        let changes: Vec<Change> = vec![
            (
                "a file's content",
                Box::new(|o| {
                    o.sources = tree(&[
                        ("package.json", "p1"),
                        ("pnpm-lock.yaml", "l1"),
                        ("src/main.ts", "m2"),
                    ])
                }),
            ),
            (
                "a file added",
                Box::new(|o| {
                    o.sources = tree(&[
                        ("package.json", "p1"),
                        ("pnpm-lock.yaml", "l1"),
                        ("src/main.ts", "m1"),
                        ("b", "m1"),
                    ])
                }),
            ),
            (
                "a file renamed",
                Box::new(|o| {
                    o.sources = tree(&[
                        ("package.json", "p1"),
                        ("pnpm-lock.yaml", "l1"),
                        ("src/other.ts", "m1"),
                    ])
                }),
            ),
            (
                "the lockfile",
                Box::new(|o| {
                    o.sources = tree(&[
                        ("package.json", "p1"),
                        ("pnpm-lock.yaml", "l2"),
                        ("src/main.ts", "m1"),
                    ])
                }),
            ),
            (
                "buildCommand",
                Box::new(|o| o.settings.build_command = Some("vite build".into())),
            ),
            (
                "installCommand",
                Box::new(|o| o.settings.install_command = Some("true".into())),
            ),
            (
                "outputDir",
                Box::new(|o| o.settings.output_dir = Some("out".into())),
            ),
            (
                "rootDir",
                Box::new(|o| o.settings.root_dir = Some("apps/web".into())),
            ),
            ("checks", Box::new(|o| o.checks.lint = CheckMode::Warn)),
            (
                "a plain value",
                Box::new(|o| o.env = env(&[("API_URL", false, "a2"), ("TOKEN", true, "bb")])),
            ),
            (
                "a secret value",
                Box::new(|o| o.env = env(&[("API_URL", false, "aa"), ("TOKEN", true, "b2")])),
            ),
            (
                "a value made secret",
                Box::new(|o| o.env = env(&[("API_URL", true, "aa"), ("TOKEN", true, "bb")])),
            ),
            (
                "a name added",
                Box::new(|o| {
                    o.env.push(EnvEntry {
                        name: "MORE".into(),
                        secret: false,
                        hash: "cc".into(),
                    })
                }),
            ),
            (
                "a name removed",
                Box::new(|o| {
                    o.env.pop();
                }),
            ),
            ("Node", Box::new(|o| o.node = Some("22.12.0".into()))),
            ("pnpm", Box::new(|o| o.pnpm = Some("10.0.0".into()))),
            ("allowed scripts", Box::new(|o| o.allowed.push("bcrypt".into()))),
        ];
        let mut seen = std::collections::HashSet::from([base.clone()]);
        for (what, change) in changes {
            let mut o = Owned::base();
            change(&mut o);
            let key = o.key().unwrap_or_else(|| panic!("{what}: no key"));
            assert!(
                seen.insert(key),
                "{what} did not change the key (or gave another change's)"
            );
        }
        // Settings that do not change what is built leave it.
        let mut o = Owned::base();
        o.settings.indexable = Some(true);
        assert_eq!(o.key().unwrap(), base);
    }

    #[test]
    fn only_reproducible_builds_have_a_key() {
        let mut o = Owned::base();
        o.sources = tree(&[("package.json", "p1"), ("src/main.ts", "m1")]);
        assert_eq!(o.key(), None, "no lockfile");
        o.sources = tree(&[("index.html", "i1")]);
        assert!(o.key().is_some(), "a static site");
        let mut o = Owned::base();
        o.env[0].hash.clear();
        assert_eq!(o.key(), None, "a value without a hash");
        let app = tree(&[("apps/web/package.json", "p1"), ("apps/web/pnpm-lock.yaml", "l1")]);
        assert!(qualifies(&app, Some("apps/web")));
        let app = tree(&[("apps/web/package.json", "p1")]);
        assert!(!qualifies(&app, Some("apps/web/")));
        let workspace = tree(&[
            ("package.json", "p"),
            ("pnpm-lock.yaml", "l"),
            ("apps/web/package.json", "p1"),
        ]);
        assert!(qualifies(&workspace, Some("apps/web")));
    }
}
