//! What the KV caches of a project for the preview server ([`ProjectGate`]): who may see its
//! previews and the key its share links are signed with. Postgres's `projects` row is the
//! truth; every change of it (settings, share links, deletion) drops the cached copy and bumps
//! the project's generation ([`Queue::forget_project`]), and a copy read from Postgres is
//! cached only if the generation is still the one seen before reading
//! ([`Queue::fill_project_gate`]). So a reader that read the row just before a change never
//! puts the old copy back after it: every API instance sees the change on its next request.

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::Queue;
use crate::domain::{PreviewAccess, ProjectId, UserId};
use crate::redis::RedisError;

/// How long a cached gate lives.
pub const GATE_TTL_SECS: u64 = 300;
/// How long a generation outlives its last change (far longer than a read of the row takes).
const GENERATION_TTL_SECS: u64 = 3600;

/// A project as the preview server needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectGate {
    pub access: PreviewAccess,
    pub indexable: bool,
    /// The share-link key (base64), once one was made.
    pub share_key: Option<String>,
}

/// A read of the cache: the gate, if cached, and the generation seen (for the fill).
#[derive(Debug, Clone)]
pub struct GateRead {
    pub gate: Option<ProjectGate>,
    pub generation: String,
}

/// Caches `ARGV[1]` at `KEYS[1]` for `ARGV[2]` seconds if the generation `KEYS[2]` is still
/// `ARGV[3]` (`""`: none).
static FILL: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"if (redis.call('GET', KEYS[2]) or '') == ARGV[3] then
             redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1 end
           return 0"#,
    )
});

impl Queue {
    /// The cached gate of a project (if cached) and its generation, in one round trip.
    pub async fn project_gate(&self, user: &UserId, project: &ProjectId) -> Result<GateRead, RedisError> {
        let (u, p) = (user.as_str(), project.as_str());
        let key = self.keys().project(u, p);
        let (raw, generation): (Option<String>, Option<String>) = self
            .redis()
            .conn()
            .mget(&[key.clone(), self.keys().project_generation(u, p)])
            .await?;
        let gate = raw
            .map(|raw| {
                serde_json::from_str(&raw).map_err(|e| RedisError::Malformed {
                    key,
                    reason: e.to_string(),
                })
            })
            .transpose()?;
        Ok(GateRead {
            gate,
            generation: generation.unwrap_or_default(),
        })
    }

    /// Caches a gate read from Postgres (for [`GATE_TTL_SECS`]), unless the project changed
    /// since `seen` was read; whether it was cached.
    pub async fn fill_project_gate(
        &self,
        user: &UserId,
        project: &ProjectId,
        gate: &ProjectGate,
        seen: &GateRead,
    ) -> Result<bool, RedisError> {
        let (u, p) = (user.as_str(), project.as_str());
        let value = serde_json::to_string(gate).expect("a gate always serialises");
        let filled: i64 = FILL
            .key(self.keys().project(u, p))
            .key(self.keys().project_generation(u, p))
            .arg(value)
            .arg(GATE_TTL_SECS)
            .arg(&seen.generation)
            .invoke_async(&mut self.redis().conn())
            .await?;
        Ok(filled == 1)
    }

    /// Drops the cached gate of a project, bumps its generation and tells every API instance
    /// (on [`crate::redis::Keys::project_changes`]) to drop its own copy: call after changing its
    /// row (or deleting it).
    pub async fn forget_project(&self, user: &UserId, project: &ProjectId) -> Result<(), RedisError> {
        let (u, p) = (user.as_str(), project.as_str());
        let generation = self.keys().project_generation(u, p);
        let _: () = redis::pipe()
            .atomic()
            .incr(&generation, 1)
            .ignore()
            .expire(&generation, GENERATION_TTL_SECS as i64)
            .ignore()
            .del(self.keys().project(u, p))
            .ignore()
            .publish(self.keys().project_changes(), format!("{u}/{p}"))
            .ignore()
            .query_async(&mut self.redis().conn())
            .await?;
        Ok(())
    }
}
