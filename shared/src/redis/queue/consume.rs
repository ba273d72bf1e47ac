//! The consumers' side: a builder daemon reads new builds, renews its claim while one runs,
//! acknowledges it when done, hands it back when draining, and reclaims builds whose daemon
//! stopped renewing. Renew, ack and hand-back act only while the daemon still owns the entry.

use std::sync::LazyLock;

use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;

use super::{Affinity, Queue, CONSUMER_GROUP, PREFER_FIELD, TAKE_OVER_FIELD};
use crate::domain::{ProjectId, UserId, VersionId};
use crate::redis::RedisError;

static RENEW: LazyLock<redis::Script> = LazyLock::new(|| owned_script(include_str!("renew.lua")));
static ACK: LazyLock<redis::Script> = LazyLock::new(|| owned_script(include_str!("ack.lua")));
static HAND_BACK: LazyLock<redis::Script> = LazyLock::new(|| owned_script(include_str!("hand_back.lua")));

/// A script that asks whether a consumer owns an entry (`owned.lua` is its head).
pub(super) fn owned_script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{}\n{body}", include_str!("owned.lua")))
}

/// A build read from the stream.
#[derive(Debug, Clone)]
pub struct Job {
    pub entry_id: String,
    pub build_id: VersionId,
    pub user_id: UserId,
    pub project_id: ProjectId,
    /// Taken over from a consumer that stopped renewing it (its builder was lost).
    pub reclaimed: bool,
    /// The builder that last built the project (copied into the entry by admission).
    pub prefer: Option<String>,
    /// How the build came to this daemon, as far as [affinity](super::affinity) goes (set by
    /// the daemon once it decides where the build runs).
    pub affinity: Affinity,
}

impl Job {
    fn of(stream: &str, entry: &redis::streams::StreamId, reclaimed: bool) -> Result<Self, RedisError> {
        let malformed = |reason: String| RedisError::Malformed {
            key: format!("{stream} {}", entry.id),
            reason,
        };
        let field = |name: &str| -> Result<String, RedisError> {
            entry
                .get::<String>(name)
                .ok_or_else(|| malformed(format!("field {name} is missing")))
        };
        Ok(Job {
            build_id: VersionId::parse(&field("build_id")?).map_err(|e| malformed(e.to_string()))?,
            user_id: UserId::parse(&field("user_id")?).map_err(|e| malformed(e.to_string()))?,
            project_id: ProjectId::parse(&field("project_id")?).map_err(|e| malformed(e.to_string()))?,
            entry_id: entry.id.clone(),
            // An entry put back for a build whose claim was lost (maintenance, the reconciler)
            // is taken over like a reclaimed one: a new attempt, counted as lost.
            reclaimed: reclaimed || entry.get::<String>(TAKE_OVER_FIELD).is_some(),
            prefer: entry.get::<String>(PREFER_FIELD).filter(|p| !p.is_empty()),
            affinity: Affinity::None,
        })
    }
}

impl Queue {
    /// Creates the consumer group (and the stream) unless it exists.
    pub async fn ensure_group(&self) -> Result<(), RedisError> {
        let mut conn = self.redis.conn();
        let created: Result<(), redis::RedisError> = conn
            .xgroup_create_mkstream(self.keys.stream(), CONSUMER_GROUP, "0")
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A reader of the stream on a connection of its own (a blocking read stalls its connection).
    pub fn reader(&self, block: std::time::Duration) -> StreamReader {
        StreamReader {
            queue: self.clone(),
            block,
            conn: None,
            nudges: Vec::new(),
        }
    }

    /// Acknowledges a finished entry and removes it from the stream (there is one group, so a
    /// processed entry is of no further use), when `consumer` still owns it. `false` when the
    /// entry was reclaimed by another consumer (or is gone): then it is left alone.
    pub async fn ack(&self, consumer: &str, entry_id: &str) -> Result<bool, RedisError> {
        self.if_owned(&ACK, consumer, entry_id).await
    }

    /// Runs a script that acts on `entry_id` only while `consumer` owns it; `true` when it did.
    async fn if_owned(
        &self,
        script: &redis::Script,
        consumer: &str,
        entry_id: &str,
    ) -> Result<bool, RedisError> {
        let done: i64 = script
            .key(self.keys.stream())
            .arg(CONSUMER_GROUP)
            .arg(consumer)
            .arg(entry_id)
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(done == 1)
    }

    /// Renews `consumer`'s claim on a running build's entry (resets its idle time). `false`
    /// when the claim is lost: another consumer reclaimed the entry, or it is gone.
    pub async fn renew(&self, consumer: &str, entry_id: &str) -> Result<bool, RedisError> {
        self.if_owned(&RENEW, consumer, entry_id).await
    }

    /// Takes over one build whose claim was not renewed for `lease` (its builder died or was
    /// cut off), if there is one.
    pub async fn reclaim(
        &self,
        consumer: &str,
        lease: std::time::Duration,
    ) -> Result<Option<Job>, RedisError> {
        let stream = self.keys.stream();
        let reply: redis::streams::StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&stream)
            .arg(CONSUMER_GROUP)
            .arg(consumer)
            .arg(lease.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.redis.conn())
            .await?;
        let Some(entry) = reply.claimed.first() else {
            return Ok(None);
        };
        self.job_or_quarantine(consumer, entry, true).await
    }

    /// The job an entry describes; an entry that describes none (a field missing or invalid:
    /// written by something other than Kiln, or by a version that wrote it differently) is
    /// moved to the dead-letter stream and acknowledged, so it is neither retried nor
    /// reclaimed forever.
    pub(super) async fn job_or_quarantine(
        &self,
        consumer: &str,
        entry: &redis::streams::StreamId,
        reclaimed: bool,
    ) -> Result<Option<Job>, RedisError> {
        let stream = self.keys.stream();
        let error = match Job::of(&stream, entry, reclaimed) {
            Ok(job) => return Ok(Some(job)),
            Err(e) => e,
        };
        tracing::error!(entry_id = %entry.id, consumer, error = %error,
            "a build stream entry describes no build: moved to the dead letters");
        let mut fields: Vec<(String, Vec<u8>)> = vec![
            ("entry_id".into(), entry.id.clone().into_bytes()),
            ("error".into(), error.to_string().into_bytes()),
        ];
        for (name, value) in &entry.map {
            if let Ok(bytes) = redis::from_redis_value_ref::<Vec<u8>>(value) {
                fields.push((format!("field:{name}"), bytes));
            }
        }
        redis::pipe()
            .atomic()
            .xadd_maxlen(
                self.keys.dead_letters(),
                redis::streams::StreamMaxlen::Approx(1000),
                "*",
                &fields,
            )
            .xack(&stream, CONSUMER_GROUP, &[&entry.id])
            .xdel(&stream, &[&entry.id])
            .query_async::<()>(&mut self.redis.conn())
            .await?;
        Ok(None)
    }

    /// Hands a build `consumer` holds back to the queue, as a new entry any daemon may read
    /// (with `take_over`, the reader takes the build over, as the reclaimed build it is).
    /// `false` when the consumer no longer owned it (it was reclaimed already).
    pub async fn hand_back(&self, consumer: &str, job: &Job, take_over: bool) -> Result<bool, RedisError> {
        let entry: Option<String> = HAND_BACK
            .key(self.keys.stream())
            .arg(CONSUMER_GROUP)
            .arg(consumer)
            .arg(&job.entry_id)
            .arg(job.build_id.to_string())
            .arg(job.user_id.as_str())
            .arg(job.project_id.as_str())
            .arg(if take_over { "1" } else { "" })
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(entry.is_some())
    }
}

/// Reads new builds for one consumer, blocking up to `block` each time, and beside them the
/// consumer's nudges (a build was handed to it: [`Queue::take`] takes it up). The connection's
/// response timeout always outlives the block: a client that gives up on a blocked read while
/// Redis still answers it would lose the entry it was given.
pub struct StreamReader {
    queue: Queue,
    block: std::time::Duration,
    conn: Option<redis::aio::MultiplexedConnection>,
    nudges: Vec<String>,
}

impl StreamReader {
    /// The next new build for `consumer`, or `None` after the block or a nudge.
    pub async fn read(&mut self, consumer: &str) -> Result<Option<Job>, RedisError> {
        let nudges = self.queue.keys.nudges(consumer);
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let mut conn = self.queue.redis.dedicated(self.block).await?;
                // Nudges sent before the group existed are of no use: the handoffs they
                // announce are looked for before every read anyway.
                let created: Result<(), redis::RedisError> =
                    conn.xgroup_create_mkstream(&nudges, CONSUMER_GROUP, "$").await;
                match created {
                    Err(e) if e.code() != Some("BUSYGROUP") => return Err(e.into()),
                    _ => {}
                }
                self.conn.insert(conn)
            }
        };
        let opts = StreamReadOptions::default()
            .group(CONSUMER_GROUP, consumer)
            .count(1)
            .block(self.block.as_millis() as usize);
        let stream = self.queue.keys.stream();
        let reply: Result<Option<StreamReadReply>, _> =
            conn.xread_options(&[&stream, &nudges], &[">", ">"], &opts).await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                self.conn = None; // reconnect next time
                return Err(e.into());
            }
        };
        let mut entry = None;
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            if key.key == stream {
                entry = key.ids.into_iter().next();
            } else {
                self.nudges.extend(key.ids.into_iter().map(|n| n.id));
            }
        }
        let Some(entry) = entry else {
            return Ok(None);
        };
        self.queue.job_or_quarantine(consumer, &entry, false).await
    }

    /// The nudges read since the last call (to acknowledge with [`Queue::take`]).
    pub fn take_nudges(&mut self) -> Vec<String> {
        std::mem::take(&mut self.nudges)
    }
}
