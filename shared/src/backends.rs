//! The connections every Kiln binary assembles from its settings, in one place: Postgres (with
//! its migrations applied), Redis (the key names, the build queue, live logs, the fleet), the
//! artifact store, and how preview URLs are written. What differs between the API, a builder
//! daemon and the maintenance run is their [`Role`].

use std::time::Duration;

use crate::config::Settings;
use crate::db::{DbError, PgPool};
use crate::preview::PreviewUrls;
use crate::redis::{fleet, Fleet, Keys, LiveLogs, Queue, Redis, RedisError};
use crate::store::{Artifacts, StoreError};

/// Which binary connects, and what it needs that the others do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The API; `preview_port` is the port its preview listener was bound to, written in
    /// preview URLs unless `KILN_PREVIEW_PUBLIC_PORT` says otherwise.
    Api { preview_port: u16 },
    /// A builder daemon: it also creates the stream's consumer group.
    Builder,
    /// `kiln-ops maintain`: a few connections, and no migrations (it never runs ahead of the
    /// binaries that apply them).
    Maintenance,
}

impl Role {
    /// Connections in the Postgres pool.
    fn pool_size(self, settings: &Settings) -> u32 {
        match self {
            Role::Api { .. } => 20,
            Role::Builder => settings.builder.concurrency as u32 + 2,
            Role::Maintenance => 2,
        }
    }

    /// The longest a command on the shared Redis connection may take.
    fn redis_timeout(self) -> Duration {
        match self {
            Role::Api { .. } => Duration::from_secs(2),
            Role::Builder => Duration::from_secs(5),
            Role::Maintenance => Duration::from_secs(10),
        }
    }

    /// The port written in preview URLs (`None`: the scheme's default).
    fn preview_port(self, settings: &Settings) -> Option<u16> {
        match self {
            Role::Api { preview_port } => Some(settings.preview.public_port.unwrap_or(preview_port)),
            // A builder has no preview listener: the port it would listen on, from the address.
            Role::Builder => settings.preview.public_port.or_else(|| {
                settings
                    .preview
                    .addr
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse().ok())
            }),
            Role::Maintenance => settings.preview.public_port,
        }
    }
}

/// A backend that could not be opened or prepared.
#[derive(Debug, thiserror::Error)]
pub enum BackendsError {
    #[error("{0}")]
    Db(#[from] DbError),
    #[error("applying migrations: {0}")]
    Migrate(DbError),
    #[error("{0}")]
    Redis(#[from] RedisError),
    #[error("creating the consumer group: {0}")]
    ConsumerGroup(RedisError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Every backend a Kiln binary talks to, connected once.
#[derive(Debug, Clone)]
pub struct Backends {
    pub db: PgPool,
    pub redis: Redis,
    pub keys: Keys,
    pub queue: Queue,
    pub live_logs: LiveLogs,
    pub fleet: Fleet,
    pub artifacts: Artifacts,
    pub urls: PreviewUrls,
}

impl Backends {
    /// Opens Postgres (lazily) and applies its migrations (not for [`Role::Maintenance`]),
    /// opens Redis (lazily), creates the consumer group ([`Role::Builder`]) and opens the
    /// artifact store.
    pub async fn connect(settings: &Settings, role: Role) -> Result<Self, BackendsError> {
        let db = crate::db::connect(&settings.database.url, role.pool_size(settings))?;
        if role != Role::Maintenance {
            crate::db::migrate(&db).await.map_err(BackendsError::Migrate)?;
        }
        let redis = crate::redis::connect(&settings.redis.url, role.redis_timeout())?;
        let keys = Keys::new(settings.redis.prefix.clone());
        let queue = Queue::new(redis.clone(), keys.clone());
        if role == Role::Builder {
            queue.ensure_group().await.map_err(BackendsError::ConsumerGroup)?;
        }
        let artifacts = Artifacts::open(&settings.storage.artifacts, &settings.storage.s3).await?;
        Ok(Backends {
            db,
            live_logs: LiveLogs::new(redis.clone(), keys.clone()),
            fleet: Fleet::new(redis.clone(), keys.clone(), fleet::LEASE),
            queue,
            redis,
            keys,
            artifacts,
            urls: PreviewUrls {
                scheme: settings.preview.scheme.clone(),
                domain: settings.preview.domain.clone(),
                port: role.preview_port(settings),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &[(&str, &str)]) -> Settings {
        let mut vars = vec![
            ("KILN_DATABASE_URL".to_owned(), "postgres://x".to_owned()),
            ("KILN_ARTIFACTS".to_owned(), "file:///tmp/a".to_owned()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Settings::from_vars(vars).unwrap()
    }

    #[test]
    fn each_role_writes_the_preview_port_it_knows() {
        let s = settings(&[("KILN_PREVIEW_ADDR", "0.0.0.0:9081")]);
        assert_eq!(Role::Api { preview_port: 4000 }.preview_port(&s), Some(4000));
        assert_eq!(Role::Builder.preview_port(&s), Some(9081));
        assert_eq!(Role::Maintenance.preview_port(&s), None);
        let public = settings(&[("KILN_PREVIEW_PUBLIC_PORT", "443")]);
        for role in [Role::Api { preview_port: 4000 }, Role::Builder, Role::Maintenance] {
            assert_eq!(role.preview_port(&public), Some(443), "{role:?}");
        }
    }
}
