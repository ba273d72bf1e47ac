//! What the KV caches of a project for the preview server ([`ProjectGate`]): whether it exists,
//! who may see its previews and the key its share links are signed with. Postgres's `projects`
//! row is the truth; every change of it (settings, share links, deletion) drops the cached
//! copy, so every API instance sees the change on its next request.

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::Queue;
use crate::domain::{PreviewAccess, ProjectId, UserId};
use crate::redis::kv::get_json;
use crate::redis::RedisError;

/// How long a cached gate lives (a copy a lost invalidation left behind lasts no longer).
pub const GATE_TTL_SECS: u64 = 300;

/// A project as the preview server needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectGate {
    pub access: PreviewAccess,
    pub indexable: bool,
    /// The share-link key (base64), once one was made.
    pub share_key: Option<String>,
}

impl Queue {
    /// The cached gate of a project, if cached.
    pub async fn project_gate(
        &self,
        user: &UserId,
        project: &ProjectId,
    ) -> Result<Option<ProjectGate>, RedisError> {
        get_json(
            self.redis(),
            &self.keys().project(user.as_str(), project.as_str()),
        )
        .await
    }

    /// Caches a project's gate (for [`GATE_TTL_SECS`]).
    pub async fn set_project_gate(
        &self,
        user: &UserId,
        project: &ProjectId,
        gate: &ProjectGate,
    ) -> Result<(), RedisError> {
        let value = serde_json::to_string(gate).expect("a gate always serialises");
        let mut conn = self.redis().conn();
        let _: () = conn
            .set_ex(
                self.keys().project(user.as_str(), project.as_str()),
                value,
                GATE_TTL_SECS,
            )
            .await?;
        Ok(())
    }

    /// Drops the cached gate of a project: call after changing its row (or deleting it).
    pub async fn forget_project(&self, user: &UserId, project: &ProjectId) -> Result<(), RedisError> {
        let mut conn = self.redis().conn();
        let _: () = conn
            .del(self.keys().project(user.as_str(), project.as_str()))
            .await?;
        Ok(())
    }
}
