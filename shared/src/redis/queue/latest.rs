//! The KV: each project's latest pointer (written by deploys and rollbacks, read by the
//! preview), which project a preview label names, and the maintenance run's compare-and-set
//! repairs of latest pointers (a build that deploys meanwhile is never overwritten by a repair
//! computed before it).

use redis::AsyncCommands;

use super::Queue;
use crate::domain::{ProjectId, UserId};
use crate::redis::kv::get_json;
use crate::redis::{LatestPointer, ProjectRef, RedisError};

/// `KEYS[1]` set to `ARGV[2]` if it still holds `ARGV[1]` (`""`: if it does not exist).
static REPLACE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"local now = redis.call('GET', KEYS[1])
           if (now == false and ARGV[1] == '') or now == ARGV[1] then
             redis.call('SET', KEYS[1], ARGV[2]) return 1 end
           return 0"#,
    )
});

impl Queue {
    pub async fn set_latest(
        &self,
        user: &UserId,
        project: &ProjectId,
        pointer: &LatestPointer,
    ) -> Result<(), RedisError> {
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
    ) -> Result<Option<LatestPointer>, RedisError> {
        let key = self.keys().latest(user.as_str(), project.as_str());
        get_json(self.redis(), &key).await
    }

    /// Records which project a preview label names (idempotent).
    pub async fn set_label(&self, label: &str, project: &ProjectRef) -> Result<(), RedisError> {
        let mut conn = self.redis().conn();
        let value = serde_json::to_string(project).expect("a project ref always serialises");
        let _: () = conn.set(self.keys().label(label), value).await?;
        Ok(())
    }

    pub async fn label(&self, label: &str) -> Result<Option<ProjectRef>, RedisError> {
        get_json(self.redis(), &self.keys().label(label)).await
    }

    /// The raw latest pointers of `projects`, in one round trip.
    pub async fn latest_raw_many(
        &self,
        projects: &[(UserId, ProjectId)],
    ) -> Result<Vec<Option<String>>, RedisError> {
        if projects.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (user, project) in projects {
            pipe.get(self.keys().latest(user.as_str(), project.as_str()));
        }
        Ok(pipe.query_async(&mut self.redis().conn()).await?)
    }

    /// Sets a project's latest pointer to `pointer` if it still is `expected` (its raw value
    /// as read, `None`: absent); false when it changed meanwhile (a deploy or a rollback).
    pub async fn replace_latest(
        &self,
        user: &UserId,
        project: &ProjectId,
        expected: Option<&str>,
        pointer: &LatestPointer,
    ) -> Result<bool, RedisError> {
        let value = serde_json::to_string(pointer).expect("a pointer always serialises");
        let n: i64 = REPLACE
            .key(self.keys().latest(user.as_str(), project.as_str()))
            .arg(expected.unwrap_or(""))
            .arg(value)
            .invoke_async(&mut self.redis().conn())
            .await?;
        Ok(n == 1)
    }
}
