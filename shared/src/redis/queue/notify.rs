//! Pub/Sub announcements: a recorded build event to every API instance (for its SSE clients),
//! a cancel to every builder. At most once: the record of both is in Postgres.

use redis::AsyncCommands;

use super::Queue;
use crate::domain::VersionId;
use crate::redis::RedisError;

impl Queue {
    /// Fans a recorded event out to every API instance (they stream it to SSE clients).
    pub async fn publish_event(&self, event: &crate::db::events::BuildEvent) -> Result<(), RedisError> {
        let body = serde_json::to_string(event).expect("an event always serialises");
        let _: i64 = self
            .redis
            .conn()
            .publish(self.keys.events(&event.build_id.to_string()), body)
            .await?;
        Ok(())
    }

    /// Tells every builder that `build` was cancelled (the one running it stops it).
    pub async fn announce_cancel(&self, build: VersionId) -> Result<(), RedisError> {
        let _: i64 = self
            .redis
            .conn()
            .publish(self.keys.cancels(), build.to_string())
            .await?;
        Ok(())
    }
}
