use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::{QueueError, Redis};
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

impl super::Queue {
    pub async fn set_latest(
        &self,
        user: &UserId,
        project: &ProjectId,
        pointer: &LatestPointer,
    ) -> Result<(), QueueError> {
        let mut conn = self.redis().conn();
        let value = serde_json::to_string(pointer).expect("a pointer always serialises");
        let _: () = conn
            .set(self.keys().latest(user.as_str(), project.as_str()), value)
            .await?;
        Ok(())
    }

    pub async fn latest(
        &self,
        user: &UserId,
        project: &ProjectId,
    ) -> Result<Option<LatestPointer>, QueueError> {
        let key = self.keys().latest(user.as_str(), project.as_str());
        get_json(self.redis(), &key).await
    }

    /// Records which project a preview label names (idempotent).
    pub async fn set_label(&self, label: &str, project: &ProjectRef) -> Result<(), QueueError> {
        let mut conn = self.redis().conn();
        let value = serde_json::to_string(project).expect("a project ref always serialises");
        let _: () = conn.set(self.keys().label(label), value).await?;
        Ok(())
    }

    pub async fn label(&self, label: &str) -> Result<Option<ProjectRef>, QueueError> {
        get_json(self.redis(), &self.keys().label(label)).await
    }
}

pub(super) async fn get_json<T: serde::de::DeserializeOwned>(
    redis: &Redis,
    key: &str,
) -> Result<Option<T>, QueueError> {
    let mut conn = redis.conn();
    let raw: Option<String> = conn.get(key).await?;
    raw.map(|raw| {
        serde_json::from_str(&raw).map_err(|e| QueueError::Malformed {
            key: key.to_owned(),
            reason: e.to_string(),
        })
    })
    .transpose()
}
