//! The fleet-wide package cache (`KILN_PACKAGE_CACHE`, `KILN_NPM_REGISTRY`): packages builders
//! fetched, kept in the artifact store under their integrity hashes, served to installs by each
//! builder's egress proxy. How long an unused one is kept is maintenance's
//! (`KILN_PACKAGE_CACHE_DAYS`).

use super::definition::{section, Fallback, Kind, Variable, BUILDER};
use super::source::{ConfigError, Source};

section! {
    title: "Package cache",
    intro: "The fleet-wide package cache: every package a builder fetches is kept in the artifact store under its integrity hash, and installs on every builder get it from there (docs/design/package-cache.md).",
    PACKAGE_CACHE = Variable::new(
        "KILN_PACKAGE_CACHE",
        Kind::Switch,
        Fallback::Value("on"),
        BUILDER,
        "installs get packages through the fleet's package cache",
    )
    .details(
        "Only where installs go through the egress proxy (namespaces and an allow-list); \
         `off`: pnpm fetches from the project's registry as it is.",
    );
    NPM_REGISTRY = Variable::new(
        "KILN_NPM_REGISTRY",
        Kind::Url,
        Fallback::Value(DEFAULT_REGISTRY),
        BUILDER,
        "the registry the package cache fetches from",
    )
    .details("Reached by the daemon, only when `KILN_EGRESS_ALLOW` admits its host and port.");
}

/// npm's public registry.
pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageCacheSettings {
    /// Whether installs go through the cache (`KILN_PACKAGE_CACHE`, default on).
    pub enabled: bool,
    /// The upstream registry, ending in `/` (`KILN_NPM_REGISTRY`).
    pub registry: url::Url,
}

impl PackageCacheSettings {
    pub(super) fn load(src: &Source) -> Result<Self, ConfigError> {
        let raw = src.required(&NPM_REGISTRY)?;
        let mut registry = match url::Url::parse(raw.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
            _ => {
                return Err(ConfigError::Invalid {
                    var: NPM_REGISTRY.name,
                    reason: format!("expected an http(s) URL, got {raw:?}"),
                })
            }
        };
        if !registry.path().ends_with('/') {
            let path = format!("{}/", registry.path());
            registry.set_path(&path);
        }
        Ok(Self {
            enabled: src.switch(&PACKAGE_CACHE)?,
            registry,
        })
    }
}

impl Default for PackageCacheSettings {
    fn default() -> Self {
        Self::load(&Source::new(Default::default(), Default::default())).expect("the defaults are valid")
    }
}
