//! The slots: a project's in-flight slot (one build of a project at a time; a rollback holds it
//! briefly) and a user's running slots across the fleet (`KILN_MAX_RUNNING_PER_USER`).

use std::sync::LazyLock;

use redis::AsyncCommands;

use super::Queue;
use crate::domain::{ProjectId, UserId, VersionId};
use crate::redis::RedisError;

static HOLD: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("hold.lua")));
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("release.lua")));
static USER_SLOT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("user_slot.lua")));

impl Queue {
    /// The build holding the project's slot, if any.
    pub async fn inflight(&self, user: &UserId, project: &ProjectId) -> Result<Option<String>, RedisError> {
        let mut conn = self.redis.conn();
        Ok(conn
            .get(self.keys.inflight(user.as_str(), project.as_str()))
            .await?)
    }

    /// Holds the project's slot with `value` for at most `ttl` (a short operation such as a
    /// rollback); `Some(holder)` when something else holds it.
    pub async fn hold(
        &self,
        value: &str,
        user: &UserId,
        project: &ProjectId,
        ttl: std::time::Duration,
    ) -> Result<Option<String>, RedisError> {
        let mut conn = self.redis.conn();
        Ok(HOLD
            .key(self.keys.inflight(user.as_str(), project.as_str()))
            .arg(value)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?)
    }

    /// Releases the project's slot if `build` holds it; true when it did.
    pub async fn release(&self, build: &str, user: &UserId, project: &ProjectId) -> Result<bool, RedisError> {
        let mut conn = self.redis.conn();
        let released: i64 = RELEASE
            .key(self.keys.inflight(user.as_str(), project.as_str()))
            .arg(build)
            .invoke_async(&mut conn)
            .await?;
        Ok(released == 1)
    }

    /// Takes (or keeps, moving its expiry on) one of `user`'s running slots for `build`, when
    /// fewer than `cap` are taken; a slot not renewed within `lease` frees itself. False when
    /// the user's slots are all taken.
    pub async fn take_user_slot(
        &self,
        user: &UserId,
        build: VersionId,
        holder: &str,
        cap: u32,
        lease: std::time::Duration,
    ) -> Result<bool, RedisError> {
        let taken: i64 = USER_SLOT
            .key(self.keys.running_of(user.as_str()))
            .arg(slot_member(build, holder))
            .arg(cap)
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(taken == 1)
    }

    /// Frees `build`'s running slot of `user`.
    pub async fn free_user_slot(
        &self,
        user: &UserId,
        build: VersionId,
        holder: &str,
    ) -> Result<(), RedisError> {
        let _: i64 = self
            .redis
            .conn()
            .zrem(self.keys.running_of(user.as_str()), slot_member(build, holder))
            .await?;
        Ok(())
    }
}

/// A running slot's member: the build and the daemon (consumer) running it, so that a daemon
/// that lost a build to a take-over frees only its own slot, never the new owner's.
fn slot_member(build: VersionId, holder: &str) -> String {
    format!("{build}@{holder}")
}
