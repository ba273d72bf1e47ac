//! Builders' uptime intervals (`builder_uptime`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row};

use super::DbError;

/// A heartbeat extends the builder's open interval unless its last one is older than this.
pub const GAP_MINUTES: i32 = 30;

/// Records a heartbeat: extends the builder's latest interval, or opens a new one after a gap.
pub async fn heartbeat(pool: &PgPool, builder: &str, host: &str, version: &str) -> Result<(), DbError> {
    sqlx::query(
        "with extended as (
             update builder_uptime set last_seen_at = now(), host = $2, version = $3
             where id = (select id from builder_uptime where builder_id = $1
                         order by last_seen_at desc limit 1)
               and last_seen_at > now() - make_interval(mins => $4)
             returning id)
         insert into builder_uptime (builder_id, host, version)
         select $1, $2, $3 where not exists (select 1 from extended)",
    )
    .bind(builder)
    .bind(host)
    .bind(version)
    .bind(GAP_MINUTES)
    .execute(pool)
    .await?;
    Ok(())
}

/// One interval during which a builder heartbeated.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Uptime {
    pub builder_id: String,
    pub host: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub seconds: i64,
}

/// Intervals newest first, at most `limit`, optionally of one builder.
pub async fn history(pool: &PgPool, builder: Option<&str>, limit: i64) -> Result<Vec<Uptime>, DbError> {
    let rows = sqlx::query(
        "select builder_id, host, version, started_at, last_seen_at,
                extract(epoch from last_seen_at - started_at)::bigint as seconds
         from builder_uptime where ($1::text is null or builder_id = $1)
         order by last_seen_at desc limit $2",
    )
    .bind(builder)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Uptime {
                builder_id: r.try_get("builder_id")?,
                host: r.try_get("host")?,
                version: r.try_get("version")?,
                started_at: r.try_get("started_at")?,
                last_seen_at: r.try_get("last_seen_at")?,
                seconds: r.try_get("seconds")?,
            })
        })
        .collect()
}
