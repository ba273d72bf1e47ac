//! What the consistency checks need of the stream: the builds it holds, entries added again for
//! builds that lost theirs, and the project slots held by builds.

use redis::AsyncCommands;

use super::{Queue, TAKE_OVER_FIELD};
use crate::domain::{ProjectId, UserId, VersionId};
use crate::redis::RedisError;

impl Queue {
    /// The builds that have an entry in the stream (waiting or being built).
    pub async fn builds_in_stream(&self) -> Result<std::collections::HashSet<String>, RedisError> {
        let reply: redis::streams::StreamRangeReply =
            self.redis.conn().xrange_all(self.keys.stream()).await?;
        Ok(reply
            .ids
            .iter()
            .filter_map(|e| e.get::<String>("build_id"))
            .collect())
    }

    /// Adds a stream entry for a build that holds its project's slot but has no entry.
    pub async fn republish(
        &self,
        build: VersionId,
        user: &UserId,
        project: &ProjectId,
    ) -> Result<(), RedisError> {
        self.add_entry(build, user, project, false).await
    }

    /// Adds a stream entry for a running build whose entry (and with it its claim) is gone:
    /// the daemon that reads it takes the build over as a new attempt, counted as lost, or
    /// fails it once its builders were lost `KILN_MAX_ATTEMPTS` times.
    pub async fn republish_for_take_over(
        &self,
        build: VersionId,
        user: &UserId,
        project: &ProjectId,
    ) -> Result<(), RedisError> {
        self.add_entry(build, user, project, true).await
    }

    async fn add_entry(
        &self,
        build: VersionId,
        user: &UserId,
        project: &ProjectId,
        take_over: bool,
    ) -> Result<(), RedisError> {
        let build = build.to_string();
        let mut fields = vec![
            ("build_id", build.as_str()),
            ("user_id", user.as_str()),
            ("project_id", project.as_str()),
        ];
        if take_over {
            fields.push((TAKE_OVER_FIELD, "1"));
        }
        let _: String = self.redis.conn().xadd(self.keys.stream(), "*", &fields).await?;
        Ok(())
    }

    /// Every project slot held without an expiry (by a build; a rollback's short hold has
    /// one), as (user, project, holder). Walks the keyspace with `SCAN`.
    pub async fn held_slots(&self) -> Result<Vec<(UserId, ProjectId, String)>, RedisError> {
        let pattern = self.keys.inflight("*", "*");
        let head = pattern.trim_end_matches("*:*").to_owned();
        let mut keys: Vec<String> = Vec::new();
        {
            let mut conn = self.redis.conn();
            let mut iter: redis::AsyncIter<String> = conn.scan_match(&pattern).await?;
            while let Some(key) = iter.next_item().await {
                keys.push(key?);
            }
        }
        let mut held = Vec::new();
        for chunk in keys.chunks(500) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.get(key).pttl(key);
            }
            let replies: Vec<(Option<String>, i64)> = pipe.query_async(&mut self.redis.conn()).await?;
            for (key, (holder, ttl)) in chunk.iter().zip(replies) {
                let (Some(holder), -1) = (holder, ttl) else {
                    continue;
                };
                let Some((user, project)) = key.strip_prefix(&head).and_then(|r| r.split_once(':')) else {
                    continue;
                };
                if let (Ok(user), Ok(project)) = (UserId::parse(user), ProjectId::parse(project)) {
                    held.push((user, project, holder));
                }
            }
        }
        Ok(held)
    }
}
