//! User tokens (`user_tokens`): bearer tokens scoped to one user, stored as their SHA-256.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::DbError;
use crate::domain::UserId;

/// A user token as listed (never the token itself).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserToken {
    pub id: String,
    pub user_id: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl UserToken {
    fn from_row(row: &PgRow) -> Result<Self, DbError> {
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            description: row.try_get("description")?,
            created_at: row.try_get("created_at")?,
            revoked_at: row.try_get("revoked_at")?,
        })
    }
}

const COLUMNS: &str = "id, user_id, description, created_at, revoked_at";

pub async fn create(
    pool: &PgPool,
    id: &str,
    user: &UserId,
    token_sha256: &str,
    description: Option<&str>,
) -> Result<UserToken, DbError> {
    let row = sqlx::query(&format!(
        "insert into user_tokens (id, user_id, token_sha256, description) values ($1, $2, $3, $4)
         returning {COLUMNS}"
    ))
    .bind(id)
    .bind(user.as_str())
    .bind(token_sha256)
    .bind(description)
    .fetch_one(pool)
    .await?;
    UserToken::from_row(&row)
}

/// The live (unrevoked) token with this hash: its id and user.
pub async fn find_live(pool: &PgPool, token_sha256: &str) -> Result<Option<(String, String)>, DbError> {
    let row =
        sqlx::query("select id, user_id from user_tokens where token_sha256 = $1 and revoked_at is null")
            .bind(token_sha256)
            .fetch_optional(pool)
            .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("user_id")?)))
        .transpose()
}

pub async fn get(pool: &PgPool, id: &str) -> Result<Option<UserToken>, DbError> {
    let row = sqlx::query(&format!("select {COLUMNS} from user_tokens where id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(UserToken::from_row).transpose()
}

/// Revokes a token (once: a revoked token keeps its first revocation time).
pub async fn revoke(pool: &PgPool, id: &str) -> Result<Option<UserToken>, DbError> {
    let row = sqlx::query(&format!(
        "update user_tokens set revoked_at = coalesce(revoked_at, now()) where id = $1
         returning {COLUMNS}"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(UserToken::from_row).transpose()
}

/// A user's tokens, newest first (revoked ones too, with their revocation time).
pub async fn list(pool: &PgPool, user: &UserId) -> Result<Vec<UserToken>, DbError> {
    let rows = sqlx::query(&format!(
        "select {COLUMNS} from user_tokens where user_id = $1 order by id desc limit 1000"
    ))
    .bind(user.as_str())
    .fetch_all(pool)
    .await?;
    rows.iter().map(UserToken::from_row).collect()
}

/// What a user token's text starts with.
pub const PREFIX: &str = "kiln_ut_";

/// A new token (`kiln_ut_` and 64 hex digits: 256 random bits) and the SHA-256 to keep.
pub fn mint() -> (String, String) {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("{PREFIX}{}", hex::encode(bytes));
    let hash = crate::store::sha256_hex(token.as_bytes());
    (token, hash)
}
