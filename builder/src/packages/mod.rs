//! The fleet-wide package cache: a pull-through npm registry each daemon serves to its own
//! installs, kept in the farm's artifact store, so a builder with an empty pnpm store installs
//! a tree the fleet has fetched before from the farm's own store, and a registry outage does
//! not stop builds whose packages the fleet already has.
//!
//! **How installs reach it.** Where installs go through the egress proxy (namespaces and an
//! allow-list), the bridge sets pnpm's `registry` to `http://packages.kiln.internal/`, a
//! name that resolves nowhere: the proxy takes every request for it ([`request::parse`])
//! *before* and independently of `KILN_EGRESS_ALLOW`, and answers it here. Installs without
//! the proxy (no namespaces, or `host-network`) use the project's registry as before.
//!
//! - **Tarballs** (`/name/-/name-1.0.0.tgz`): the index (`package_cache` in Postgres) names the
//!   registry's tarball of `name@version` by its SHA-512; the object `packages/sha512/<hex>`
//!   is read and hashed on the way **out**, and served only if it hashes to its name. A
//!   missing object, or one that does not (refused, logged and counted: `refused`), is
//!   fetched from the registry: its metadata (the abbreviated packument) first, then the
//!   tarball, whose bytes must match the metadata's `dist.integrity` on the way **in**; then
//!   it is stored under its own SHA-512 and recorded in the index.
//! - **Metadata** (`/name`, for installs that resolve: a frozen install from a v9 lockfile
//!   asks for tarballs only) passes through to the registry, and the copy kept in the store
//!   is served when the registry cannot be reached. Tarball addresses in it are rewritten to
//!   the cache's, so what the install then fetches comes through the cache too.
//!
//! **Why a tenant cannot poison it.** Only this code, in the daemon, writes objects and index
//! rows; build code speaks HTTP GET to the proxy and nothing it sends is stored (at most it
//! makes the daemon fetch a package from the registry, stored as the registry has it; the
//! tarball and metadata sizes are capped, and what no install uses is collected). An index row
//! (`name@version` → hash) is written only from a tarball the daemon fetched from the
//! configured registry itself and checked against the registry's own metadata for that
//! `name@version`. A project's lockfile is never read here: whatever integrity a tenant's
//! lockfile claims for `name@version`, the cache serves the registry's bytes for it (pnpm,
//! checking them against that lockfile, fails that tenant's install), and nothing a tenant
//! does changes what another tenant's install of `name@version` gets. An object altered in
//! the store is caught by the check on the way out. Objects are named by their content, so
//! two rows naming one object agree on its bytes.
//!
//! Upstream fetches obey the farm's egress policy ([`upstream`]); `kiln-ops maintain` deletes
//! rows unused for `KILN_PACKAGE_CACHE_DAYS`, then the objects no row names.

pub mod integrity;
pub mod request;
mod upstream;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use kiln_shared::config::{AllowedHost, PackageCacheSettings};
use kiln_shared::db::{packages as index, PgPool};
use kiln_shared::metrics::Metrics;
use kiln_shared::store::Artifacts;

use self::integrity::Expected;
use self::request::Ask;
use self::upstream::{Upstream, UpstreamError};

/// The cache's host name, as installs see it (it resolves nowhere: only the proxy answers it).
pub const HOST: &str = "packages.kiln.internal";
/// pnpm's `registry` when the cache is on.
pub const REGISTRY_URL: &str = "http://packages.kiln.internal/";

/// The abbreviated metadata document npm's registry serves to installers.
const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";
/// A daemon stores a package's metadata again at most this often (installs that resolve ask
/// for it every time; the copy is for when the registry is down).
const KEEP_METADATA_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The daemon's package cache (one per daemon, shared by its proxies).
#[derive(Debug)]
pub struct PackageCache {
    artifacts: Artifacts,
    db: PgPool,
    metrics: Metrics,
    upstream: Upstream,
    /// When this daemon last stored each metadata document.
    kept: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// What the cache did for one command's installs (one proxy), for the build's log.
#[derive(Debug, Default)]
pub struct Tally {
    hits: AtomicU64,
    misses: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

impl Tally {
    /// `[kiln] packages: 212 from the fleet cache, 3 from the registry`, when the cache served
    /// any tarball.
    pub fn summary(&self) -> Option<String> {
        let [hits, misses, refused, failed] =
            [&self.hits, &self.misses, &self.refused, &self.failed].map(|n| n.load(Ordering::Relaxed));
        if hits + misses + refused + failed == 0 {
            return None;
        }
        let mut line = format!("[kiln] packages: {hits} from the fleet cache, {misses} from the registry");
        if refused > 0 {
            line.push_str(&format!(
                ", {refused} cached cop{} refused (integrity check failed) and fetched again",
                if refused == 1 { "y" } else { "ies" }
            ));
        }
        if failed > 0 {
            line.push_str(&format!(", {failed} not available"));
        }
        Some(line)
    }
}

/// The cache's answer to one request.
#[derive(Debug)]
pub struct Reply {
    pub status: &'static str,
    pub content_type: String,
    pub body: Bytes,
}

impl Reply {
    fn text(status: &'static str, message: String) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body: Bytes::from(format!("{message}\n")),
        }
    }
}

impl PackageCache {
    /// `None` when the cache is off.
    pub fn new(
        settings: &PackageCacheSettings,
        allowed: Arc<Vec<AllowedHost>>,
        artifacts: Artifacts,
        db: PgPool,
        metrics: Metrics,
    ) -> Option<Arc<Self>> {
        settings.enabled.then(|| {
            Arc::new(Self {
                artifacts,
                db,
                metrics,
                upstream: Upstream::new(settings.registry.clone(), allowed),
                kept: Default::default(),
            })
        })
    }

    /// Answers one request of an install; `say` writes a line to the build's log.
    pub async fn answer(&self, ask: Ask, tally: &Tally, say: &(dyn Fn(&str) + Sync)) -> Reply {
        match ask {
            Ask::Tarball { name, version } => self.tarball(&name, &version, tally, say).await,
            Ask::Metadata { name, accept } => self.metadata(&name, accept.as_deref(), say).await,
            Ask::Refused(why) => Reply::text("404 Not Found", format!("Kiln's package cache: {why}")),
        }
    }

    async fn tarball(&self, name: &str, version: &str, tally: &Tally, say: &(dyn Fn(&str) + Sync)) -> Reply {
        let id = format!("{name}@{version}");
        match self.cached(name, version).await {
            Cached::Good(body) => {
                tally.hits.fetch_add(1, Ordering::Relaxed);
                self.metrics.package("hit", body.len() as u64);
                return tarball_reply(body);
            }
            Cached::Bad(key) => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
                self.metrics.package("refused", 0);
                tracing::warn!(package = %id, key, "a cached package failed its integrity check: refused");
                say(&format!(
                    "[kiln] package cache: the stored tarball of {id} failed its integrity check: refused; fetching it from the registry again"
                ));
            }
            Cached::Absent => {}
        }
        match self.fetch(name, version).await {
            Ok(body) => {
                tally.misses.fetch_add(1, Ordering::Relaxed);
                self.metrics.package("miss", body.len() as u64);
                tarball_reply(body)
            }
            Err(e) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                self.metrics.package("failed", 0);
                let status = if e.is_not_found() {
                    "404 Not Found"
                } else {
                    "502 Bad Gateway"
                };
                say(&format!(
                    "[kiln] package cache: {id} is not in the fleet's cache and cannot be fetched: {e}"
                ));
                Reply::text(status, format!("Kiln's package cache: {id}: {e}"))
            }
        }
    }

    /// The stored tarball of `name@version`, checked against its name.
    async fn cached(&self, name: &str, version: &str) -> Cached {
        let row = match index::lookup(&self.db, name, version).await {
            Ok(Some(row)) => row,
            Ok(None) => return Cached::Absent,
            Err(e) => {
                tracing::warn!(error = %e, "package cache: cannot read the index; fetching from the registry");
                return Cached::Absent;
            }
        };
        let key = Artifacts::package_key(&row.integrity);
        let body = match self.artifacts.objects().get(&key).await {
            Ok(Some(body)) => body,
            Ok(None) => return Cached::Absent,
            Err(e) => {
                tracing::warn!(error = %e, key, "package cache: cannot read the artifact store");
                return Cached::Absent;
            }
        };
        let (hex, checked) = (row.integrity.clone(), body.clone());
        let good = tokio::task::spawn_blocking(move || integrity::is_object(&hex, &checked))
            .await
            .unwrap_or(false);
        if !good {
            return Cached::Bad(key);
        }
        if row.last_used_at < chrono::Utc::now() - chrono::Duration::days(1) {
            let (db, name, version) = (self.db.clone(), name.to_owned(), version.to_owned());
            tokio::spawn(async move {
                if let Err(e) = index::touch(&db, &name, &version).await {
                    tracing::debug!(error = %e, "package cache: cannot note a use");
                }
            });
        }
        Cached::Good(body)
    }

    /// Fetches `name@version` from the registry, checks it against the registry's metadata,
    /// stores and records it.
    async fn fetch(&self, name: &str, version: &str) -> Result<Bytes, FetchError> {
        let meta_url = self.upstream.metadata_url(name);
        let (meta, _) = self.upstream.get(&meta_url, ABBREVIATED).await?;
        self.keep_metadata(name, ABBREVIATED, meta.clone());
        let doc: serde_json::Value =
            serde_json::from_slice(&meta).map_err(|e| FetchError::Metadata(format!("not JSON: {e}")))?;
        let dist = doc
            .get("versions")
            .and_then(|v| v.get(version))
            .and_then(|v| v.get("dist"))
            .ok_or_else(|| FetchError::Metadata(format!("no version {version}")))?;
        let expected =
            Expected::of_dist(dist).ok_or_else(|| FetchError::Metadata("no integrity hash".into()))?;
        let tarball = dist
            .get("tarball")
            .and_then(|t| t.as_str())
            .and_then(|t| url::Url::parse(t).ok())
            .ok_or_else(|| FetchError::Metadata("no tarball address".into()))?;
        let (body, _) = self.upstream.get(&tarball, "application/octet-stream").await?;
        let checked = body.clone();
        let hex = tokio::task::spawn_blocking(move || {
            expected
                .matches(&checked)
                .then(|| integrity::sha512_hex(&checked))
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| FetchError::Integrity(tarball.to_string()))?;
        let key = Artifacts::package_key(&hex);
        // `put`, not `put_if_absent`: an object that failed its check is replaced.
        self.artifacts
            .objects()
            .put(&key, body.clone(), "application/octet-stream")
            .await
            .map_err(|e| FetchError::Store(e.to_string()))?;
        if let Err(e) = index::record(&self.db, name, version, &hex, body.len() as u64).await {
            tracing::warn!(error = %e, "package cache: cannot record a package (served all the same)");
        }
        Ok(body)
    }

    async fn metadata(&self, name: &str, accept: Option<&str>, say: &(dyn Fn(&str) + Sync)) -> Reply {
        let accept = accept.unwrap_or("application/json");
        let kind = if accept.contains(ABBREVIATED) {
            ABBREVIATED
        } else {
            "application/json"
        };
        let url = self.upstream.metadata_url(name);
        let (body, stale) = match self.upstream.get(&url, kind).await {
            Ok((body, _)) => {
                self.keep_metadata(name, kind, body.clone());
                (body, false)
            }
            Err(e) if e.is_not_found() => {
                return Reply::text("404 Not Found", format!("Kiln's package cache: {name}: {e}"))
            }
            Err(e) => match self.artifacts.objects().get(&meta_key(name, kind)).await {
                Ok(Some(body)) => (body, true),
                _ => {
                    say(&format!(
                        "[kiln] package cache: the metadata of {name} cannot be fetched ({e}) and the fleet has no copy"
                    ));
                    return Reply::text("502 Bad Gateway", format!("Kiln's package cache: {name}: {e}"));
                }
            },
        };
        if stale {
            tracing::info!(
                name,
                "package cache: the registry is unreachable; served the stored metadata"
            );
        }
        let registry = self.upstream.registry.as_str().to_owned();
        let body = tokio::task::spawn_blocking(move || rewrite(&body, &registry))
            .await
            .unwrap_or_default();
        Reply {
            status: "200 OK",
            content_type: kind.to_owned(),
            body,
        }
    }

    /// Keeps a copy of a metadata document the registry served (in the background).
    fn keep_metadata(&self, name: &str, kind: &str, body: Bytes) {
        let key = meta_key(name, kind);
        {
            let now = std::time::Instant::now();
            let mut kept = self.kept.lock().expect("not poisoned");
            if kept
                .get(&key)
                .is_some_and(|at| now.duration_since(*at) < KEEP_METADATA_EVERY)
            {
                return;
            }
            if kept.len() > 100_000 {
                kept.clear();
            }
            kept.insert(key.clone(), now);
        }
        let objects = self.artifacts.clone();
        tokio::spawn(async move {
            if let Err(e) = objects.objects().put(&key, body, "application/json").await {
                tracing::debug!(error = %e, key, "package cache: cannot keep metadata");
            }
        });
    }
}

enum Cached {
    Good(Bytes),
    /// The object under this key failed its check.
    Bad(String),
    Absent,
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("the registry's metadata: {0}")]
    Metadata(String),
    #[error("{0} does not match the registry's integrity hash")]
    Integrity(String),
    #[error("the artifact store: {0}")]
    Store(String),
}

impl FetchError {
    fn is_not_found(&self) -> bool {
        match self {
            FetchError::Upstream(e) => e.is_not_found(),
            FetchError::Metadata(_) => true,
            _ => false,
        }
    }
}

fn tarball_reply(body: Bytes) -> Reply {
    Reply {
        status: "200 OK",
        content_type: "application/octet-stream".into(),
        body,
    }
}

/// Where a metadata document is kept: `packages/meta/<name, its / as %2f>.<kind>.json`.
fn meta_key(name: &str, kind: &str) -> String {
    let kind = if kind == ABBREVIATED { "install" } else { "full" };
    Artifacts::package_meta_key(&format!("{}.{kind}.json", name.replace('/', "%2f")))
}

/// A metadata document with the registry's address (in tarball URLs) replaced by the cache's.
fn rewrite(body: &[u8], registry: &str) -> Bytes {
    let from = format!("\"{registry}");
    let to = format!("\"{REGISTRY_URL}");
    let finder = memchr::memmem::Finder::new(from.as_bytes());
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    for found in finder.find_iter(body) {
        out.extend_from_slice(&body[at..found]);
        out.extend_from_slice(to.as_bytes());
        at = found + from.len();
    }
    out.extend_from_slice(&body[at..]);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_points_installs_at_the_cache() {
        let doc = br#"{"name":"a","versions":{"1.0.0":{"dist":{"tarball":"https://registry.npmjs.org/a/-/a-1.0.0.tgz"}}},"homepage":"https://registry.npmjs.org.evil/x"}"#;
        let out = rewrite(doc, "https://registry.npmjs.org/");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"name":"a","versions":{"1.0.0":{"dist":{"tarball":"http://packages.kiln.internal/a/-/a-1.0.0.tgz"}}},"homepage":"https://registry.npmjs.org.evil/x"}"#
        );
        assert_eq!(
            meta_key("@types/react", ABBREVIATED),
            "packages/meta/@types%2freact.install.json"
        );
    }

    #[test]
    fn the_summary_says_where_packages_came_from() {
        let tally = Tally::default();
        assert_eq!(tally.summary(), None);
        tally.hits.store(212, Ordering::Relaxed);
        tally.misses.store(3, Ordering::Relaxed);
        assert_eq!(
            tally.summary().unwrap(),
            "[kiln] packages: 212 from the fleet cache, 3 from the registry"
        );
        tally.refused.store(1, Ordering::Relaxed);
        assert!(tally
            .summary()
            .unwrap()
            .ends_with(", 1 cached copy refused (integrity check failed) and fetched again"));
    }
}
