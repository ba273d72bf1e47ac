//! The Postgres repository: version history. Migrations live in `migrations/` and are applied at
//! start-up by every binary; sqlx holds a Postgres advisory lock while it migrates, so replicas
//! that start together apply them once.

pub mod versions;

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::PgPoolOptions;
pub use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("postgres: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("row {id} is corrupt: {reason}")]
    Corrupt { id: String, reason: String },
}

impl DbError {
    /// The database could not be reached (as opposed to a query that failed).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DbError::Sqlx(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed)
        )
    }
}

/// Connects a pool (lazily: the first query opens a connection).
pub fn connect(url: &secrecy::SecretString, max_connections: u32) -> Result<PgPool, DbError> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(url.expose_secret())?)
}

/// Applies pending migrations under Postgres' advisory lock.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    sqlx::migrate!("../migrations").run(pool).await?;
    Ok(())
}

/// `select 1`, for `/readyz`.
pub async fn ping(pool: &PgPool) -> Result<(), DbError> {
    sqlx::query("select 1").execute(pool).await?;
    Ok(())
}
