//! User deletions (`deletions`): the record of "delete every project of this user", worked on by
//! whichever API instance holds its lease. A row is `queued` until one takes it, `running`
//! while one works on it (renewing its lease), `done` at the end. A lease that expires (its
//! holder died) lets another instance take the row over and finish the job.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::DbError;
use crate::domain::UserId;

/// A user deletion as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// `del_` and a lower-case ULID.
    pub id: String,
    pub user_id: UserId,
    /// `queued`, `running` or `done`.
    pub status: String,
    pub projects_total: i32,
    pub projects_deleted: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Deletion {
    fn from_row(row: &PgRow) -> Result<Self, DbError> {
        let id: String = row.try_get("id")?;
        let user: String = row.try_get("user_id")?;
        Ok(Self {
            user_id: UserId::parse(&user).map_err(|e| DbError::Corrupt {
                id: id.clone(),
                reason: e.to_string(),
            })?,
            id,
            status: row.try_get("status")?,
            projects_total: row.try_get("projects_total")?,
            projects_deleted: row.try_get("projects_deleted")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

/// Whether `raw` has the form of a deletion id (`del_` and 26 lower-case ULID characters).
pub fn is_id(raw: &str) -> bool {
    raw.strip_prefix("del_")
        .is_some_and(|u| u.len() == 26 && u.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()))
}

/// Records a deletion of `user` (queued); when one is already in progress, that one. The
/// boolean says whether this call made it.
pub async fn start(pool: &PgPool, user: &UserId) -> Result<(Deletion, bool), DbError> {
    let id = format!("del_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    for _ in 0..3 {
        let made = sqlx::query(
            "insert into deletions (id, user_id) values ($1, $2)
             on conflict (user_id) where status <> 'done' do nothing returning *",
        )
        .bind(&id)
        .bind(user.as_str())
        .fetch_optional(pool)
        .await?;
        if let Some(row) = made {
            return Ok((Deletion::from_row(&row)?, true));
        }
        let running = sqlx::query("select * from deletions where user_id = $1 and status <> 'done'")
            .bind(user.as_str())
            .fetch_optional(pool)
            .await?;
        if let Some(row) = running {
            return Ok((Deletion::from_row(&row)?, false));
        }
        // It finished in between: record a new one.
    }
    Err(DbError::Corrupt {
        id,
        reason: "a deletion kept finishing while another was recorded".into(),
    })
}

/// The deletion of `user` in progress (queued or running), if any.
pub async fn active(pool: &PgPool, user: &UserId) -> Result<Option<Deletion>, DbError> {
    sqlx::query("select * from deletions where user_id = $1 and status <> 'done'")
        .bind(user.as_str())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(Deletion::from_row)
        .transpose()
}

pub async fn get(pool: &PgPool, id: &str) -> Result<Option<Deletion>, DbError> {
    sqlx::query("select * from deletions where id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(Deletion::from_row)
        .transpose()
}

/// Takes the oldest deletion nobody holds (queued, or running under an expired lease) for
/// `owner`, for `lease`; `None` when there is none.
pub async fn take(pool: &PgPool, owner: &str, lease: Duration) -> Result<Option<Deletion>, DbError> {
    sqlx::query(
        "update deletions set status = 'running', lease_owner = $1,
                lease_until = now() + make_interval(secs => $2),
                started_at = coalesce(started_at, now())
         where id = (
             select id from deletions
             where status <> 'done' and (lease_until is null or lease_until < now())
             order by created_at limit 1
             for update skip locked)
         returning *",
    )
    .bind(owner)
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(Deletion::from_row)
    .transpose()
}

/// Moves `owner`'s lease on and records the progress; false when `owner` no longer holds it
/// (it expired and another instance took it over: stop).
pub async fn renew(
    pool: &PgPool,
    id: &str,
    owner: &str,
    lease: Duration,
    total: i32,
    deleted: i32,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "update deletions set lease_until = now() + make_interval(secs => $3),
                projects_total = $4, projects_deleted = $5
         where id = $1 and lease_owner = $2 and status = 'running'",
    )
    .bind(id)
    .bind(owner)
    .bind(lease.as_secs_f64())
    .bind(total)
    .bind(deleted)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the deletion done (if `owner` still holds it).
pub async fn finish(pool: &PgPool, id: &str, owner: &str) -> Result<bool, DbError> {
    let done = sqlx::query(
        "update deletions set status = 'done', finished_at = now(), lease_owner = null,
                lease_until = null, projects_deleted = projects_total
         where id = $1 and lease_owner = $2 and status = 'running'",
    )
    .bind(id)
    .bind(owner)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
