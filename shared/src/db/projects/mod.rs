//! Queries on `projects` (one row a project: its build settings, the keys of its environment
//! hashes and share links, its last activity) and on what hangs off it:
//!
//! - `env`: its environment values and secrets (`project_env`), and the snapshot a build
//!   records on its version;
//! - `reencrypt`: every secret sealed again under the newest key;
//! - `list`: a page of projects, newest activity first, with their counts and last builds;
//! - `delete`: a project's rows deleted, its versions in batches;
//! - `share`: the preview gate's reads, the share-link key (made on first use, rotated to
//!   revoke), and a project's figures.

pub mod delete;
pub mod env;
pub mod list;
pub mod reencrypt;
pub mod share;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::db::DbError;
use crate::domain::{BuildSettings, ProjectId, UserId};

/// One project's row.
#[derive(Debug, Clone)]
pub struct Project {
    pub user_id: UserId,
    pub project_id: ProjectId,
    pub settings: BuildSettings,
    pub created_at: DateTime<Utc>,
    /// The latest build request, setting or environment change.
    pub active_at: DateTime<Utc>,
}

impl Project {
    pub(crate) fn from_row(row: &PgRow) -> Result<Self, DbError> {
        let user: String = row.try_get("user_id")?;
        let project: String = row.try_get("project_id")?;
        let corrupt = |reason: String| DbError::Corrupt {
            id: format!("{user}/{project}"),
            reason,
        };
        Ok(Project {
            user_id: UserId::parse(&user).map_err(|e| corrupt(e.to_string()))?,
            project_id: ProjectId::parse(&project).map_err(|e| corrupt(e.to_string()))?,
            settings: row.try_get::<Json<BuildSettings>, _>("settings")?.0,
            created_at: row.try_get("created_at")?,
            active_at: row.try_get("active_at")?,
        })
    }
}

/// The project's row, if it has one.
pub async fn get(pool: &PgPool, user: &UserId, project: &ProjectId) -> Result<Option<Project>, DbError> {
    sqlx::query("select * from projects where user_id = $1 and project_id = $2")
        .bind(user.as_str())
        .bind(project.as_str())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(Project::from_row)
        .transpose()
}

/// The project's row, made when it has none, locked for the rest of the transaction (its
/// activity is now).
pub async fn lock(
    tx: &mut Transaction<'_, Postgres>,
    user: &UserId,
    project: &ProjectId,
) -> Result<Project, DbError> {
    let row = sqlx::query(
        "insert into projects (user_id, project_id) values ($1, $2)
         on conflict (user_id, project_id) do update set active_at = now()
         returning *",
    )
    .bind(user.as_str())
    .bind(project.as_str())
    .fetch_one(&mut **tx)
    .await?;
    Project::from_row(&row)
}

/// Applies `change` to the project's settings (making its row if needed) and returns the
/// project as saved; `change`'s error leaves everything as it was.
pub async fn update_settings<E>(
    pool: &PgPool,
    user: &UserId,
    project: &ProjectId,
    change: impl FnOnce(&BuildSettings) -> Result<BuildSettings, E>,
) -> Result<Result<Project, E>, DbError> {
    let mut tx = pool.begin().await?;
    let current = lock(&mut tx, user, project).await?;
    let settings = match change(&current.settings) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let row =
        sqlx::query("update projects set settings = $3 where user_id = $1 and project_id = $2 returning *")
            .bind(user.as_str())
            .bind(project.as_str())
            .bind(Json(&settings))
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(Ok(Project::from_row(&row)?))
}
