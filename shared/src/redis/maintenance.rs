//! What the nightly maintenance job (`kiln-ops maintain`) needs of Redis: a fleet-wide lock
//! with a fencing number, and compare-and-set repairs of latest pointers (a build that deploys
//! meanwhile is never overwritten by a repair computed before it).

use redis::AsyncCommands;

use super::{LatestPointer, Queue, QueueError};
use crate::domain::{ProjectId, UserId};

/// `KEYS[1]` set to `ARGV[2]` if it still holds `ARGV[1]` (`""`: if it does not exist).
static REPLACE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"local now = redis.call('GET', KEYS[1])
           if (now == false and ARGV[1] == '') or now == ARGV[1] then
             redis.call('SET', KEYS[1], ARGV[2]) return 1 end
           return 0"#,
    )
});

/// `PEXPIRE` (`ARGV[2]` ms) or `DEL` (`ARGV[2]` = 0) of `KEYS[1]` if it holds `ARGV[1]`.
static HELD: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r#"if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
           if ARGV[2] == '0' then redis.call('DEL', KEYS[1])
           else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
           return 1"#,
    )
});

/// A taken maintenance lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceLock {
    pub holder: String,
    /// Grows with every run that takes the lock: a run's writes can name it.
    pub fence: i64,
}

impl Queue {
    /// Takes the maintenance lock for `ttl` as `holder`; `Err(current holder and the ms it has
    /// left)` when another run holds it.
    pub async fn take_maintenance_lock(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Result<MaintenanceLock, (String, i64)>, QueueError> {
        let key = self.keys().maintenance_lock();
        let mut conn = self.redis().conn();
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut conn)
            .await?;
        if set.is_none() {
            let (current, left): (Option<String>, i64) =
                redis::pipe().get(&key).pttl(&key).query_async(&mut conn).await?;
            return Ok(Err((current.unwrap_or_default(), left)));
        }
        let fence: i64 = conn.incr(self.keys().maintenance_fence(), 1).await?;
        Ok(Ok(MaintenanceLock {
            holder: holder.to_owned(),
            fence,
        }))
    }

    /// Extends the lock if `lock` still holds it (false: it was lost, the run must stop).
    pub async fn renew_maintenance_lock(
        &self,
        lock: &MaintenanceLock,
        ttl: std::time::Duration,
    ) -> Result<bool, QueueError> {
        self.held(lock, ttl.as_millis().max(1) as u64).await
    }

    /// Gives the lock up (if it still holds it).
    pub async fn release_maintenance_lock(&self, lock: &MaintenanceLock) -> Result<bool, QueueError> {
        self.held(lock, 0).await
    }

    async fn held(&self, lock: &MaintenanceLock, ms: u64) -> Result<bool, QueueError> {
        let n: i64 = HELD
            .key(self.keys().maintenance_lock())
            .arg(&lock.holder)
            .arg(ms)
            .invoke_async(&mut self.redis().conn())
            .await?;
        Ok(n == 1)
    }

    /// The raw latest pointers of `projects`, in one round trip.
    pub async fn latest_raw_many(
        &self,
        projects: &[(UserId, ProjectId)],
    ) -> Result<Vec<Option<String>>, QueueError> {
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
    ) -> Result<bool, QueueError> {
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
