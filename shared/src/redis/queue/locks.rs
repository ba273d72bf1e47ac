//! Fleet-wide locks: a plain one taken for a while by one daemon (the reconciler, upkeep), and
//! the nightly maintenance run's (`kiln-ops maintain`), which also hands out a fencing number.

use redis::AsyncCommands;

use super::Queue;
use crate::redis::RedisError;

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
    /// Takes the fleet-wide lock `key` for `ttl` unless another holder has it.
    pub async fn try_lock(
        &self,
        key: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, RedisError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(set.is_some())
    }

    /// Takes the maintenance lock for `ttl` as `holder`; `Err(current holder and the ms it has
    /// left)` when another run holds it.
    pub async fn take_maintenance_lock(
        &self,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Result<MaintenanceLock, (String, i64)>, RedisError> {
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
    ) -> Result<bool, RedisError> {
        self.held(lock, ttl.as_millis().max(1) as u64).await
    }

    /// Gives the lock up (if it still holds it).
    pub async fn release_maintenance_lock(&self, lock: &MaintenanceLock) -> Result<bool, RedisError> {
        self.held(lock, 0).await
    }

    async fn held(&self, lock: &MaintenanceLock, ms: u64) -> Result<bool, RedisError> {
        let n: i64 = HELD
            .key(self.keys().maintenance_lock())
            .arg(&lock.holder)
            .arg(ms)
            .invoke_async(&mut self.redis().conn())
            .await?;
        Ok(n == 1)
    }
}
