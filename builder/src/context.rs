//! The builder's context: one daemon's connections (Postgres, Redis, the artifact store), its
//! settings, toolchain and confinement, made once by [`Builder::connect`] and shared by the
//! worker loop, the stations of a build, the reconciler and the metrics listener.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kiln_shared::backends::{Backends, Role};
use kiln_shared::config::Settings;
use kiln_shared::db::PgPool;
use kiln_shared::metrics::Metrics;
use kiln_shared::preview::PreviewUrls;
use kiln_shared::redis::{Fleet, LiveLogs, Queue, StreamReader};
use kiln_shared::store::Artifacts;

use crate::lease::Running;
use crate::log::Redactor;

/// How long one read waits for a new build before looking for lost ones and for shutdown
/// again: a lost build is reclaimed at most this long after its lease ran out.
const BLOCK: Duration = Duration::from_millis(500);

/// node and pnpm versions, recorded with every version for deterministic rebuilds.
#[derive(Debug, Clone, Default)]
pub struct Toolchain {
    pub node: Option<String>,
    pub pnpm: Option<String>,
}

/// One daemon's connections and settings.
#[derive(Debug)]
pub struct Builder {
    pub(crate) settings: Arc<Settings>,
    pub(crate) db: PgPool,
    pub(crate) queue: Queue,
    pub(crate) artifacts: Artifacts,
    pub(crate) urls: PreviewUrls,
    pub(crate) toolchain: Toolchain,
    pub(crate) live_logs: LiveLogs,
    pub(crate) redactor: Redactor,
    pub(crate) fleet: Fleet,
    pub(crate) events: crate::events::EventSink,
    pub(crate) running: Running,
    pub(crate) metrics: Metrics,
    consumer: String,
    pub(crate) confinement: Arc<crate::sandbox::Confinement>,
    /// Install sandboxes started ahead of builds, one per worker slot.
    pub(crate) warm: Option<crate::sandbox::warm::WarmPool>,
    /// The dependency audit, when `KILN_AUDIT` is on.
    pub(crate) auditor: Option<Arc<crate::audit::Auditor>>,
    /// The keys of projects' secrets (`None`: a build of a project with secrets fails here
    /// as an infrastructure failure, so a builder that has them takes it).
    pub(crate) keyring: Option<Arc<kiln_shared::secrets::Keyring>>,
    /// Projects' warm dependency trees on this host (`KILN_DEP_CACHE_MB=off`: none).
    pub(crate) dep_cache: Option<crate::deps::DepCache>,
}

impl Builder {
    /// Connects the backends ([`Backends::connect`] as [`Role::Builder`]: Postgres with its
    /// migrations, Redis with the consumer group, the artifact store), then starts what a
    /// daemon adds: the work folders, the confinement, the warm sandboxes, the audit.
    pub async fn connect(settings: Settings) -> anyhow::Result<Self> {
        let Backends {
            db,
            queue,
            live_logs,
            fleet,
            artifacts,
            urls,
            ..
        } = Backends::connect(&settings, Role::Builder).await?;
        for dir in [&settings.builder.work_dir, &settings.builder.pnpm_store] {
            tokio::fs::create_dir_all(dir)
                .await
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        let consumer = settings.builder.id.clone().unwrap_or_else(default_consumer);
        let toolchain = Toolchain {
            node: version_of("node").await,
            pnpm: version_of("pnpm").await,
        };
        if toolchain.pnpm.is_none() {
            tracing::warn!("pnpm is not on PATH: builds with a package.json will fail at install");
        }
        tracing::info!(consumer, node = ?toolchain.node, pnpm = ?toolchain.pnpm, "builder connected");
        let confinement = Arc::new(crate::sandbox::Confinement::probe(&settings).await?);
        let metrics = Metrics::new("builder");
        if let Some(allowed) = confinement.egress() {
            let cache = crate::packages::PackageCache::new(
                &settings.packages,
                allowed.clone(),
                artifacts.clone(),
                db.clone(),
                metrics.clone(),
            );
            if let Some(cache) = cache {
                tracing::info!(registry = %settings.packages.registry, "installs get packages through the fleet's package cache");
                confinement.serve_packages(cache);
            }
        }
        let warm = crate::sandbox::warm::WarmPool::start(
            confinement.clone(),
            settings.builder.concurrency,
            settings.sandbox.warm,
        );
        let auditor = match (&settings.audit.mode, &settings.audit.db) {
            (kiln_shared::config::AuditMode::Off, _) | (_, None) => None,
            (mode, Some(dir)) => {
                let dir = dir.clone();
                let auditor = tokio::task::spawn_blocking(move || crate::audit::Auditor::open(&dir))
                    .await
                    .context("loading the advisory database")??;
                tracing::info!(?mode, "dependency audit on");
                Some(Arc::new(auditor))
            }
        };
        let redactor = Redactor::new(settings.secret_values());
        let keyring = kiln_shared::secrets::Keyring::from_settings(&settings.encryption)?.map(Arc::new);
        if keyring.is_none() {
            tracing::warn!("no key for projects' secrets (KILN_SECRETS_KEY): builds of projects with secret values fail on this builder");
        }
        let events =
            crate::events::EventSink::start(db.clone(), queue.clone(), settings.builder.build_events);
        let dep_cache = match settings.builder.dep_cache_bytes {
            None => None,
            Some(max) => Some(
                crate::deps::DepCache::open(
                    &settings.builder.work_dir,
                    max,
                    confinement.store_uid(),
                    metrics.clone(),
                )
                .await
                .context("reading the warm dependency trees")?,
            ),
        };
        Ok(Self {
            settings: Arc::new(settings),
            db,
            queue,
            artifacts,
            urls,
            toolchain,
            live_logs,
            redactor,
            fleet,
            events,
            running: Running::default(),
            confinement,
            warm,
            auditor,
            keyring,
            dep_cache,
            metrics,
            consumer,
        })
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Lets go of what the builder keeps ready between builds: its warm sandboxes (and their
    /// cgroups) go, and no more are made. A daemon does so once its last build is over; a
    /// builder stepped by hand when it is done.
    pub fn close(&self) {
        if let Some(pool) = &self.warm {
            pool.close();
        }
    }

    /// How long starting (or taking over) a build waits for an unreachable Postgres: half a
    /// lease, since nothing renews the entry's claim until the build has started.
    pub(crate) fn claim_patience(&self) -> Duration {
        self.settings.fleet.lease / 2
    }

    /// A reader of the build stream for one worker (its own Redis connection).
    pub fn reader(&self) -> StreamReader {
        self.queue.reader(BLOCK)
    }
}

fn default_consumer() -> String {
    let host = hostname();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    )
}

async fn version_of(program: &str) -> Option<String> {
    let out = tokio::process::Command::new(program)
        .arg("--version")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .await
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches('v')
            .to_owned()
    })
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "builder".into())
}
