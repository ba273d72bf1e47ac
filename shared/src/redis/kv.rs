//! The JSON values the KV holds: a project's latest pointer and the project a label names.

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::connection::Redis;
use super::error::RedisError;
use crate::domain::{ProjectId, UserId, VersionId};

/// The latest pointer of a project, as the seeds' KV held it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatestPointer {
    pub latest_version_id: VersionId,
    pub preview_url: String,
    pub timestamp: chrono::DateTime<chrono::Utc>,
}

/// Which project a preview label names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRef {
    pub user_id: UserId,
    pub project_id: ProjectId,
}

pub(super) async fn get_json<T: serde::de::DeserializeOwned>(
    redis: &Redis,
    key: &str,
) -> Result<Option<T>, RedisError> {
    let mut conn = redis.conn();
    let raw: Option<String> = conn.get(key).await?;
    raw.map(|raw| {
        serde_json::from_str(&raw).map_err(|e| RedisError::Malformed {
            key: key.to_owned(),
            reason: e.to_string(),
        })
    })
    .transpose()
}
