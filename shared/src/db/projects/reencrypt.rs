//! Key rotation: every project secret sealed with a key other than the keyring's first is
//! opened and sealed again under the first (`kiln-ops reencrypt`). Safe to run twice, or
//! while values change: a secret set meanwhile is left as it was set.

use serde::Serialize;
use sqlx::{PgPool, Row};

use crate::db::DbError;
use crate::secrets::{context, Keyring, Sealed};

/// How many secrets are read at a time.
const BATCH: i64 = 500;

/// What a re-encryption did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reencrypted {
    /// The key they are sealed with now.
    pub key_id: String,
    /// Secrets sealed again under it.
    pub resealed: u64,
    /// Secrets set again while this ran (left as set).
    pub changed_meanwhile: u64,
    /// Secrets that could not be opened (`user/project/NAME: why`): their key is not in the
    /// keyring, or they do not decrypt.
    pub failed: Vec<String>,
}

/// Seals every secret not sealed with the keyring's first key under it (`dry_run`: counts
/// them, changes nothing).
pub async fn reencrypt(pool: &PgPool, keyring: &Keyring, dry_run: bool) -> Result<Reencrypted, DbError> {
    let current = keyring.current().to_owned();
    let mut report = Reencrypted {
        key_id: current.clone(),
        ..Reencrypted::default()
    };
    let mut after = (String::new(), String::new(), String::new());
    loop {
        let rows = sqlx::query(
            "select user_id, project_id, name, key_id, ciphertext from project_env
             where secret and key_id <> $1 and (user_id, project_id, name) > ($2, $3, $4)
             order by user_id, project_id, name limit $5",
        )
        .bind(&current)
        .bind(&after.0)
        .bind(&after.1)
        .bind(&after.2)
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after = (
            last.try_get("user_id")?,
            last.try_get("project_id")?,
            last.try_get("name")?,
        );
        for row in &rows {
            let (user, project, name): (String, String, String) = (
                row.try_get("user_id")?,
                row.try_get("project_id")?,
                row.try_get("name")?,
            );
            let sealed = Sealed {
                key_id: row.try_get("key_id")?,
                bytes: row.try_get("ciphertext")?,
            };
            let bound = context(&user, &project, &name);
            let value = match keyring.open(&bound, &sealed) {
                Ok(value) => value,
                Err(e) => {
                    report.failed.push(format!("{user}/{project}/{name}: {e}"));
                    continue;
                }
            };
            if dry_run {
                report.resealed += 1;
                continue;
            }
            let new = keyring.seal(&bound, &value);
            let done = sqlx::query(
                "update project_env set ciphertext = $5, key_id = $6
                 where user_id = $1 and project_id = $2 and name = $3 and ciphertext = $4",
            )
            .bind(&user)
            .bind(&project)
            .bind(&name)
            .bind(&sealed.bytes)
            .bind(&new.bytes)
            .bind(&new.key_id)
            .execute(pool)
            .await?;
            match done.rows_affected() {
                0 => report.changed_meanwhile += 1,
                _ => report.resealed += 1,
            }
        }
    }
    Ok(report)
}
