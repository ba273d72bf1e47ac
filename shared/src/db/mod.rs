//! The Postgres repository: version history. Migrations live in `migrations/` and are applied at
//! start-up by every binary; sqlx holds a Postgres advisory lock while it migrates, so replicas
//! that start together apply them once.

pub mod batch;
pub mod deletions;
pub mod events;
pub mod fleet;
pub mod packages;
pub mod projects;
pub mod retention;
pub mod tokens;
pub mod versions;
pub mod webhooks;

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
    /// Postgres could not be reached by an earlier try (a batch answers all its callers so).
    #[error("postgres is unreachable: {0}")]
    Unreachable(String),
}

impl DbError {
    /// The database could not be reached (as opposed to a query that failed).
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unreachable(_) => true,
            DbError::Sqlx(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed) => true,
            // SQLSTATE class 08 (connection exception) and 57 (operator intervention: the
            // server is shutting down or restarting).
            DbError::Sqlx(sqlx::Error::Database(e)) => e
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57")),
            _ => false,
        }
    }
}

/// Runs `op` again while Postgres is unreachable ([`DbError::is_unavailable`]): after 250 ms,
/// then twice as long each time up to 5 s, for at most `patience` in all. Any other error,
/// and the last one, is returned. For writes that must not be lost to a database restart:
/// each `op` must be safe to run twice (they are fenced updates).
pub async fn patiently<T, F, Fut>(what: &str, patience: Duration, mut op: F) -> Result<T, DbError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DbError>>,
{
    let started = tokio::time::Instant::now();
    let mut wait = Duration::from_millis(250);
    loop {
        match op().await {
            Err(e) if e.is_unavailable() && started.elapsed() + wait <= patience => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64,
                    "postgres is unreachable; {what} is tried again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Creates an empty database named `{prefix}_{a fresh ULID}` on the server of `admin_url` and
/// returns its URL: each test, benchmark farm and chaos scenario gets one of its own.
pub async fn create_database(admin_url: &str, prefix: &str) -> Result<String, DbError> {
    let name = format!("{prefix}_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    let admin = PgPool::connect(admin_url).await?;
    sqlx::query(&format!("create database {name}"))
        .execute(&admin)
        .await?;
    admin.close().await;
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(base, _)| base);
    Ok(format!("{base}/{name}"))
}

/// Connects a pool (lazily: the first query opens a connection).
pub fn connect(url: &secrecy::SecretString, max_connections: u32) -> Result<PgPool, DbError> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(url.expose_secret())?)
}

/// A pool for statements whose plan does not depend on their parameters' values (the batched
/// statements of [`batch`]: arrays in, one plan for any batch). Postgres would otherwise plan
/// each execution anew while it decides whether a generic plan is worth it; planning is a good
/// part of such a statement's cost.
pub fn connect_generic(options: &GenericPlans, max_connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options.0.clone())
}

/// Connection options for [`connect_generic`] pools.
#[derive(Debug, Clone)]
pub struct GenericPlans(sqlx::postgres::PgConnectOptions);

impl GenericPlans {
    pub fn new(url: &secrecy::SecretString) -> Result<Self, DbError> {
        let options: sqlx::postgres::PgConnectOptions = url.expose_secret().parse()?;
        Ok(Self(options.options([("plan_cache_mode", "force_generic_plan")])))
    }
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
