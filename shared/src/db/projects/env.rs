//! A project's environment (`project_env`): plain values kept as they are, secrets only sealed
//! ([`crate::secrets`]); and the snapshot of names and keyed hashes a build records on its
//! version.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgPool, Row};

use crate::db::DbError;
use crate::domain::{EnvEntry, EnvName, ProjectId, UserId, VersionId};
use crate::secrets::Sealed;

/// The most values a project has.
pub use crate::domain::MAX_ENV_VARS as MAX_VARS;

/// One value of a project's environment, as stored.
#[derive(Debug, Clone)]
pub struct StoredVar {
    pub name: String,
    /// The value, or (a secret) its sealed form.
    pub value: StoredValue,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredValue {
    Plain(String),
    Secret(Sealed),
}

impl StoredVar {
    pub fn is_secret(&self) -> bool {
        matches!(self.value, StoredValue::Secret(_))
    }
}

/// The project's values, by name.
pub async fn list(pool: &PgPool, user: &UserId, project: &ProjectId) -> Result<Vec<StoredVar>, DbError> {
    let rows = sqlx::query(
        "select name, secret, value, ciphertext, key_id, updated_at from project_env
         where user_id = $1 and project_id = $2 order by name",
    )
    .bind(user.as_str())
    .bind(project.as_str())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .filter_map(|row| stored_var(row).transpose())
        .collect()
}

/// A row of `project_env` (`None`: the null side of an outer join).
fn stored_var(row: &sqlx::postgres::PgRow) -> Result<Option<StoredVar>, DbError> {
    let Some(name) = row.try_get::<Option<String>, _>("name")? else {
        return Ok(None);
    };
    let value = match row.try_get::<bool, _>("secret")? {
        true => StoredValue::Secret(Sealed {
            key_id: row.try_get("key_id")?,
            bytes: row.try_get("ciphertext")?,
        }),
        false => StoredValue::Plain(row.try_get("value")?),
    };
    Ok(Some(StoredVar {
        name,
        value,
        updated_at: row.try_get("updated_at")?,
    }))
}

/// Sets one value (making the project's row if needed) and returns it as saved; `None` when
/// the project has [`MAX_VARS`] values already and this name is not one of them.
pub async fn put(
    pool: &PgPool,
    user: &UserId,
    project: &ProjectId,
    name: &EnvName,
    value: &StoredValue,
) -> Result<Option<StoredVar>, DbError> {
    let mut tx = pool.begin().await?;
    super::lock(&mut tx, user, project).await?;
    let (count, exists): (i64, bool) = sqlx::query_as(
        "select count(*), coalesce(bool_or(name = $3), false) from project_env
         where user_id = $1 and project_id = $2",
    )
    .bind(user.as_str())
    .bind(project.as_str())
    .bind(name.as_str())
    .fetch_one(&mut *tx)
    .await?;
    if !exists && count as usize >= MAX_VARS {
        return Ok(None);
    }
    let (plain, sealed, key_id) = match value {
        StoredValue::Plain(v) => (Some(v.as_str()), None, None),
        StoredValue::Secret(s) => (None, Some(s.bytes.as_slice()), Some(s.key_id.as_str())),
    };
    let saved = sqlx::query(
        "insert into project_env (user_id, project_id, name, secret, value, ciphertext, key_id)
         values ($1, $2, $3, $4, $5, $6, $7)
         on conflict (user_id, project_id, name) do update set secret = excluded.secret,
             value = excluded.value, ciphertext = excluded.ciphertext, key_id = excluded.key_id,
             updated_at = now()
         returning name, secret, value, ciphertext, key_id, updated_at",
    )
    .bind(user.as_str())
    .bind(project.as_str())
    .bind(name.as_str())
    .bind(sealed.is_some())
    .bind(plain)
    .bind(sealed)
    .bind(key_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    stored_var(&saved)
}

/// Removes one value; false when the project has no such name.
pub async fn delete(
    pool: &PgPool,
    user: &UserId,
    project: &ProjectId,
    name: &EnvName,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "with gone as (delete from project_env where user_id = $1 and project_id = $2 and name = $3
                       returning user_id, project_id)
         update projects p set active_at = now() from gone
         where p.user_id = gone.user_id and p.project_id = gone.project_id",
    )
    .bind(user.as_str())
    .bind(project.as_str())
    .bind(name.as_str())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// What a build reads: the project's values and the key of its hashes (made when first
/// needed), in one round trip when the project has no values or has its key already.
/// `None` when the project has no row (it was deleted).
pub async fn for_build(
    pool: &PgPool,
    user: &UserId,
    project: &ProjectId,
) -> Result<Option<(Vec<StoredVar>, Vec<u8>)>, DbError> {
    let rows = sqlx::query(
        "select p.env_key, e.name, e.secret, e.value, e.ciphertext, e.key_id, e.updated_at
         from projects p left join project_env e on e.user_id = p.user_id and e.project_id = p.project_id
         where p.user_id = $1 and p.project_id = $2 order by e.name",
    )
    .bind(user.as_str())
    .bind(project.as_str())
    .fetch_all(pool)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let key: Option<Vec<u8>> = first.try_get("env_key")?;
    let vars = rows
        .iter()
        .filter_map(|row| stored_var(row).transpose())
        .collect::<Result<Vec<_>, _>>()?;
    let key = match key {
        Some(key) => key,
        None => sqlx::query_scalar(
            "update projects set env_key = coalesce(env_key, $3)
             where user_id = $1 and project_id = $2 returning env_key",
        )
        .bind(user.as_str())
        .bind(project.as_str())
        .bind(crate::secrets::random_key())
        .fetch_optional(pool)
        .await?
        .unwrap_or_default(),
    };
    Ok(Some((vars, key)))
}

/// Records the environment a version is built with.
pub async fn record_snapshot(pool: &PgPool, id: VersionId, entries: &[EnvEntry]) -> Result<(), DbError> {
    sqlx::query("update versions set env = $2 where id = $1")
        .bind(id.to_string())
        .bind(Json(entries))
        .execute(pool)
        .await?;
    Ok(())
}
