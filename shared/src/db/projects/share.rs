//! What the preview server and the share-link routes read and change of a project's row: its
//! gate (settings and share-link key), the share-link key made on first use, and its rotation
//! (which revokes every link signed with the old key); and the figures a project's answer shows
//! (how many versions, the last build).

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgPool, Row};

use crate::db::DbError;
use crate::domain::{BuildSettings, BuildStatus, ProjectId, UserId, VersionId};

/// A project's settings and share-link key, if it has a row.
pub async fn gate(
    pool: &PgPool,
    user: &UserId,
    project: &ProjectId,
) -> Result<Option<(BuildSettings, Option<Vec<u8>>)>, DbError> {
    let row = sqlx::query("select settings, share_key from projects where user_id = $1 and project_id = $2")
        .bind(user.as_str())
        .bind(project.as_str())
        .fetch_optional(pool)
        .await?;
    row.map(|r| {
        Ok((
            r.try_get::<Json<BuildSettings>, _>("settings")?.0,
            r.try_get::<Option<Vec<u8>>, _>("share_key")?,
        ))
    })
    .transpose()
}

/// The project's share-link key, `candidate` stored when it has none yet; `None` when the
/// project has no row. The flag says whether `candidate` was stored (the row changed).
pub async fn share_key(
    pool: &PgPool,
    user: &UserId,
    project: &ProjectId,
    candidate: &[u8],
) -> Result<Option<(Vec<u8>, bool)>, DbError> {
    let key: Option<Vec<u8>> = sqlx::query_scalar(
        "update projects set share_key = coalesce(share_key, $3)
         where user_id = $1 and project_id = $2 returning share_key",
    )
    .bind(user.as_str())
    .bind(project.as_str())
    .bind(candidate)
    .fetch_optional(pool)
    .await?;
    Ok(key.map(|k| {
        let made = k == candidate;
        (k, made)
    }))
}

/// Replaces the project's share-link key with `key` (every link signed with the old one stops
/// opening its previews); `false` when the project has no row.
pub async fn rotate_share_key(
    pool: &PgPool,
    user: &UserId,
    project: &ProjectId,
    key: &[u8],
) -> Result<bool, DbError> {
    let done = sqlx::query("update projects set share_key = $3 where user_id = $1 and project_id = $2")
        .bind(user.as_str())
        .bind(project.as_str())
        .bind(key)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// A project's last build, as its answer shows it.
#[derive(Debug, Clone)]
pub struct LastBuild {
    pub id: VersionId,
    pub status: BuildStatus,
    pub created_at: DateTime<Utc>,
}

/// How many versions the project has, and its newest build.
pub async fn figures(
    pool: &PgPool,
    user: &UserId,
    project: &ProjectId,
) -> Result<(i64, Option<LastBuild>), DbError> {
    let count: i64 =
        sqlx::query_scalar("select count(*) from versions where user_id = $1 and project_id = $2")
            .bind(user.as_str())
            .bind(project.as_str())
            .fetch_one(pool)
            .await?;
    let last = sqlx::query(
        "select id, status, created_at from versions where user_id = $1 and project_id = $2
         order by created_at desc, id desc limit 1",
    )
    .bind(user.as_str())
    .bind(project.as_str())
    .fetch_optional(pool)
    .await?;
    let last = last
        .map(|r| {
            let id: String = r.try_get("id")?;
            let status: String = r.try_get("status")?;
            let corrupt = |reason: String| DbError::Corrupt {
                id: id.clone(),
                reason,
            };
            Ok::<_, DbError>(LastBuild {
                id: VersionId::parse(&id).map_err(|e| corrupt(e.to_string()))?,
                status: status
                    .parse()
                    .map_err(|_| corrupt(format!("unknown status {status}")))?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()?;
    Ok((count, last))
}
