//! The fleet-wide package cache's index (`package_cache`): which tarball, by its sha512 (hex),
//! is the registry's for a package's name and version, and when an install last used it.
//! Written by builder daemons only, from tarballs they checked against the registry's own
//! metadata; read by every daemon; collected by `kiln-ops maintain`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

use super::DbError;

/// One cached package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPackage {
    pub name: String,
    pub version: String,
    /// The tarball's sha512, in hex.
    pub integrity: String,
    pub bytes: i64,
    pub last_used_at: DateTime<Utc>,
}

/// The tarball recorded for `name@version`, if any.
pub async fn lookup(pool: &PgPool, name: &str, version: &str) -> Result<Option<CachedPackage>, DbError> {
    let row = sqlx::query(
        "select integrity, bytes, last_used_at from package_cache where name = $1 and version = $2",
    )
    .bind(name)
    .bind(version)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(CachedPackage {
            name: name.to_owned(),
            version: version.to_owned(),
            integrity: row.try_get("integrity")?,
            bytes: row.try_get("bytes")?,
            last_used_at: row.try_get("last_used_at")?,
        })
    })
    .transpose()
}

/// Notes a use of `name@version` (at most one write a day per package).
pub async fn touch(pool: &PgPool, name: &str, version: &str) -> Result<(), DbError> {
    sqlx::query(
        "update package_cache set last_used_at = now()
         where name = $1 and version = $2 and last_used_at < now() - interval '1 day'",
    )
    .bind(name)
    .bind(version)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records the registry's tarball of `name@version` (checked by the caller).
pub async fn record(
    pool: &PgPool,
    name: &str,
    version: &str,
    integrity: &str,
    bytes: u64,
) -> Result<(), DbError> {
    sqlx::query(
        "insert into package_cache (name, version, integrity, bytes) values ($1, $2, $3, $4)
         on conflict (name, version) do update
           set integrity = excluded.integrity, bytes = excluded.bytes, last_used_at = now()",
    )
    .bind(name)
    .bind(version)
    .bind(integrity)
    .bind(bytes as i64)
    .execute(pool)
    .await?;
    Ok(())
}

/// Packages no install used for `unused`, oldest first, at most `limit`.
pub async fn unused(pool: &PgPool, unused: Duration, limit: i64) -> Result<Vec<CachedPackage>, DbError> {
    let rows = sqlx::query(
        "select name, version, integrity, bytes, last_used_at from package_cache
         where last_used_at < now() - make_interval(secs => $1)
         order by last_used_at limit $2",
    )
    .bind(unused.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(CachedPackage {
                name: row.try_get("name")?,
                version: row.try_get("version")?,
                integrity: row.try_get("integrity")?,
                bytes: row.try_get("bytes")?,
                last_used_at: row.try_get("last_used_at")?,
            })
        })
        .collect()
}

/// Deletes the row of `package` unless it was used since it was read (compare-and-set on
/// `last_used_at`); true when deleted.
pub async fn forget(pool: &PgPool, package: &CachedPackage) -> Result<bool, DbError> {
    let done =
        sqlx::query("delete from package_cache where name = $1 and version = $2 and last_used_at = $3")
            .bind(&package.name)
            .bind(&package.version)
            .bind(package.last_used_at)
            .execute(pool)
            .await?;
    Ok(done.rows_affected() > 0)
}

/// Whether any row names the tarball `integrity`.
pub async fn referenced(pool: &PgPool, integrity: &str) -> Result<bool, DbError> {
    let row = sqlx::query("select exists (select 1 from package_cache where integrity = $1)")
        .bind(integrity)
        .fetch_one(pool)
        .await?;
    Ok(row.try_get::<bool, _>(0)?)
}
