//! A build's log lines, live, in a Redis stream of their own (`<prefix>:logs:<build>`).
//!
//! Entry ids are the line numbers (`0-1`, `0-2`, …), so a follower resumes after line `n` by
//! reading from `0-n`, on any API instance. The builder ends the stream with an `end` entry once
//! the whole log is in the artifact store; the stream then expires after [`AFTER_END`] and the
//! stored log serves from there on.

use std::time::Duration;

use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;

use super::connection::Redis;
use super::error::RedisError;
use super::keys::Keys;
use crate::domain::VersionId;

/// How long the live stream of a running build is kept without a new line.
const WHILE_RUNNING: Duration = Duration::from_secs(24 * 3600);
/// How long the live stream is kept after its build ended.
const AFTER_END: Duration = Duration::from_secs(3600);

/// One entry of a log stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// Line `n` (from 1) of the log.
    Line { n: u64, text: String },
    /// The log is complete.
    End,
}

/// The live log streams.
#[derive(Debug, Clone)]
pub struct LiveLogs {
    redis: Redis,
    keys: Keys,
}

impl LiveLogs {
    pub fn new(redis: Redis, keys: Keys) -> Self {
        Self { redis, keys }
    }

    /// Appends numbered lines (in order, numbers only growing) in one round trip.
    pub async fn append(&self, build: VersionId, lines: &[(u64, String)]) -> Result<(), RedisError> {
        if lines.is_empty() {
            return Ok(());
        }
        let key = self.keys.logs(&build.to_string());
        let mut pipe = redis::pipe();
        for (n, text) in lines {
            pipe.xadd(&key, format!("0-{n}"), &[("line", text.as_str())])
                .ignore();
        }
        pipe.expire(&key, WHILE_RUNNING.as_secs() as i64).ignore();
        pipe.query_async::<()>(&mut self.redis.conn()).await?;
        Ok(())
    }

    /// Ends the stream after line `last` (followers stop there) and lets it expire.
    pub async fn finish(&self, build: VersionId, last: u64) -> Result<(), RedisError> {
        let key = self.keys.logs(&build.to_string());
        redis::pipe()
            .xadd(&key, format!("0-{}", last + 1), &[("end", "1")])
            .ignore()
            .expire(&key, AFTER_END.as_secs() as i64)
            .ignore()
            .query_async::<()>(&mut self.redis.conn())
            .await?;
        Ok(())
    }

    /// Every entry so far (empty when the stream does not exist: not started, or expired).
    pub async fn all(&self, build: VersionId) -> Result<Vec<LogEntry>, RedisError> {
        let key = self.keys.logs(&build.to_string());
        let reply: StreamRangeReply = self.redis.conn().xrange_all(&key).await?;
        reply.ids.iter().map(|e| parse(&key, e)).collect()
    }

    /// A follower of one build's stream, on a connection of its own (it blocks).
    pub fn follower(&self, build: VersionId, block: Duration) -> LogFollower {
        LogFollower {
            redis: self.redis.clone(),
            key: self.keys.logs(&build.to_string()),
            block,
            conn: None,
        }
    }
}

/// Reads a log stream from a line onwards, blocking for new lines.
pub struct LogFollower {
    redis: Redis,
    key: String,
    block: Duration,
    conn: Option<redis::aio::MultiplexedConnection>,
}

impl LogFollower {
    /// Entries after line `after`, waiting up to the block for the first; empty after the block.
    pub async fn next(&mut self, after: u64) -> Result<Vec<LogEntry>, RedisError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.redis.dedicated(self.block).await?),
        };
        let opts = StreamReadOptions::default()
            .count(500)
            .block(self.block.as_millis() as usize);
        let from = format!("0-{after}");
        let reply: Result<Option<StreamReadReply>, _> =
            conn.xread_options(&[&self.key], &[&from], &opts).await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                self.conn = None;
                return Err(e.into());
            }
        };
        reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|e| parse(&self.key, &e))
            .collect()
    }

    /// Whether the stream exists (it does from the build's first line until it expires).
    pub async fn exists(&self) -> Result<bool, RedisError> {
        Ok(self.redis.conn().exists(&self.key).await?)
    }
}

fn parse(key: &str, entry: &redis::streams::StreamId) -> Result<LogEntry, RedisError> {
    let malformed = |reason: String| RedisError::Malformed {
        key: format!("{key} {}", entry.id),
        reason,
    };
    let n = entry
        .id
        .strip_prefix("0-")
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| malformed("the entry id is not a line number".into()))?;
    if entry.map.contains_key("end") {
        return Ok(LogEntry::End);
    }
    let text = entry
        .get::<String>("line")
        .ok_or_else(|| malformed("field line is missing".into()))?;
    Ok(LogEntry::Line { n, text })
}
