//! A project's rows deleted: its `projects` row (its settings and environment go with it), then
//! its versions in batches, each batch one short transaction with the build events and webhook
//! deliveries of its builds, so a project of thousands of versions never holds one long one.

use sqlx::{PgPool, Row};

use crate::db::DbError;
use crate::domain::{ProjectId, UserId, VersionId};

/// What one call removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    pub versions: u64,
    pub events: u64,
    pub deliveries: u64,
    pub env: u64,
    /// The removed versions (for their logs) and their own manifests' keys.
    pub ids: Vec<VersionId>,
    pub manifest_keys: Vec<String>,
}

impl Removed {
    /// Adds `other`'s counts (not its ids and keys) to these.
    pub fn add_counts(&mut self, other: &Removed) {
        self.versions += other.versions;
        self.events += other.events;
        self.deliveries += other.deliveries;
        self.env += other.env;
    }
}

/// Whether the project has anything left: its row or a version.
pub async fn exists(pool: &PgPool, user: &UserId, project: &ProjectId) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar(
        "select exists (select 1 from projects where user_id = $1 and project_id = $2)
             or exists (select 1 from versions where user_id = $1 and project_id = $2)",
    )
    .bind(user.as_str())
    .bind(project.as_str())
    .fetch_one(pool)
    .await?)
}

/// Deletes the project's row and its environment; how many environment values went (`None`:
/// it had no row).
pub async fn delete_row(pool: &PgPool, user: &UserId, project: &ProjectId) -> Result<Option<u64>, DbError> {
    let mut tx = pool.begin().await?;
    let env = sqlx::query("delete from project_env where user_id = $1 and project_id = $2")
        .bind(user.as_str())
        .bind(project.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let rows = sqlx::query("delete from projects where user_id = $1 and project_id = $2")
        .bind(user.as_str())
        .bind(project.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok((rows > 0).then_some(env))
}

/// The project's builds still queued or running.
pub async fn active_builds(
    pool: &PgPool,
    user: &UserId,
    project: &ProjectId,
) -> Result<Vec<VersionId>, DbError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "select id from versions
         where user_id = $1 and project_id = $2 and status in ('queued', 'running')",
    )
    .bind(user.as_str())
    .bind(project.as_str())
    .fetch_all(pool)
    .await?;
    ids.iter().map(|id| parse_id(id)).collect()
}

/// Deletes at most `batch` of the project's versions (newest first) with their build events and
/// the webhook deliveries of those builds, in one transaction. An empty answer: none was left.
pub async fn delete_versions(
    pool: &PgPool,
    user: &UserId,
    project: &ProjectId,
    batch: i64,
) -> Result<Removed, DbError> {
    let mut tx = pool.begin().await?;
    let ids: Vec<String> = sqlx::query_scalar(
        "select id from versions where user_id = $1 and project_id = $2
         order by id desc limit $3 for update",
    )
    .bind(user.as_str())
    .bind(project.as_str())
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    if ids.is_empty() {
        return Ok(Removed::default());
    }
    let events = sqlx::query("delete from build_events where build_id = any($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let deliveries = sqlx::query("delete from webhook_deliveries where build_id = any($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let rows = sqlx::query(
        "delete from versions where id = any($1)
         returning id, source_manifest_key, output_manifest_key",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut removed = Removed {
        versions: rows.len() as u64,
        events,
        deliveries,
        ..Removed::default()
    };
    for row in &rows {
        let id = parse_id(&row.try_get::<String, _>("id")?)?;
        // Only the version's own manifests: a rollback or a retry names its target's, which
        // go with the target (versions share manifests only within their project).
        let own = format!("manifests/{id}/");
        for column in ["source_manifest_key", "output_manifest_key"] {
            if let Some(key) = row.try_get::<Option<String>, _>(column)? {
                if key.starts_with(&own) {
                    removed.manifest_keys.push(key);
                }
            }
        }
        removed.ids.push(id);
    }
    Ok(removed)
}

/// The projects a user has (a row or a version), in order.
pub async fn of_user(pool: &PgPool, user: &UserId) -> Result<Vec<ProjectId>, DbError> {
    let names: Vec<String> = sqlx::query_scalar(
        "select project_id from projects where user_id = $1
         union select distinct project_id from versions where user_id = $1
         order by 1",
    )
    .bind(user.as_str())
    .fetch_all(pool)
    .await?;
    names
        .iter()
        .map(|p| {
            ProjectId::parse(p).map_err(|e| DbError::Corrupt {
                id: format!("{user}/{p}"),
                reason: e.to_string(),
            })
        })
        .collect()
}

fn parse_id(id: &str) -> Result<VersionId, DbError> {
    VersionId::parse(id).map_err(|e| DbError::Corrupt {
        id: id.to_owned(),
        reason: format!("version id: {e}"),
    })
}
