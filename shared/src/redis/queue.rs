use std::sync::LazyLock;

use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;

use super::{Keys, QueueError, Redis};
use crate::domain::{ProjectId, UserId, VersionId};

/// The one consumer group all builder daemons read from.
pub const CONSUMER_GROUP: &str = "builders";

static ADMIT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("admit.lua")));
static HOLD: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("hold.lua")));
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("release.lua")));
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| owned_script(include_str!("renew.lua")));
static ACK: LazyLock<redis::Script> = LazyLock::new(|| owned_script(include_str!("ack.lua")));
static HAND_BACK: LazyLock<redis::Script> = LazyLock::new(|| owned_script(include_str!("hand_back.lua")));
static USER_SLOT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("user_slot.lua")));

/// A script that asks whether a consumer owns an entry (`owned.lua` is its head).
fn owned_script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{}\n{body}", include_str!("owned.lua")))
}

/// What the admission script did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Queued {
        entry_id: String,
    },
    /// Another build holds the project's slot.
    Conflict {
        holder: String,
    },
    /// The build's quota is used up; nothing was written.
    OverQuota(QuotaHit),
    /// The project's preview label already names another project (a hash collision of the
    /// label, found or made); nothing was written.
    LabelTaken,
}

/// The fleet-wide quotas a build is counted against when it is admitted. A build of a project
/// that was never admitted before is a new project (counted per user); every later build of it
/// is a rebuild (counted per project). `0` means no quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaLimits {
    pub new_projects: u32,
    pub rebuilds: u32,
    pub window: std::time::Duration,
}

impl QuotaLimits {
    /// Counts nothing (the reconciler queues again builds that were counted when admitted).
    pub const NONE: QuotaLimits = QuotaLimits {
        new_projects: 0,
        rebuilds: 0,
        window: crate::config::QUOTA_WINDOW,
    };

    pub fn of(settings: &crate::config::LimitSettings) -> Self {
        Self {
            new_projects: settings.new_projects_per_hour.unwrap_or(0),
            rebuilds: settings.rebuilds_per_hour.unwrap_or(0),
            window: crate::config::QUOTA_WINDOW,
        }
    }

    pub fn is_off(&self) -> bool {
        self.new_projects == 0 && self.rebuilds == 0
    }

    fn limit(&self, quota: Quota) -> u32 {
        match quota {
            Quota::NewProjects => self.new_projects,
            Quota::Rebuilds => self.rebuilds,
        }
    }
}

/// Which quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// New projects per user.
    NewProjects,
    /// Builds after the first, per project.
    Rebuilds,
}

impl Quota {
    /// The name clients see (`"quota"` in a 429's body).
    pub fn name(self) -> &'static str {
        match self {
            Quota::NewProjects => "new_projects_per_user",
            Quota::Rebuilds => "rebuilds_per_project",
        }
    }
}

/// A quota that is used up: which, its limit, and when its oldest unit frees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaHit {
    pub quota: Quota,
    pub limit: u32,
    pub window: std::time::Duration,
    pub retry_after: std::time::Duration,
}

/// What admission reads before it does any work: the project's slot, whether the KV has its
/// latest pointer, and whether its quota looks used up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    pub holder: Option<String>,
    pub has_latest: bool,
    pub over_quota: Option<QuotaHit>,
    /// The request's signature, recorded in the same round trip (when one was given).
    pub signature: Option<super::SignatureUse>,
}

/// The preflight reads quotas on the API's clock, not Redis': units this close to leaving the
/// window are not counted, so a clock a little ahead of Redis' never refuses a build the
/// admission script would take (the script decides, on Redis' clock).
const PREFLIGHT_SLACK_MS: u64 = 5_000;

/// The stream field that marks an entry put back for a build whose claim was lost.
const TAKE_OVER_FIELD: &str = "take_over";

/// A build read from the stream.
#[derive(Debug, Clone)]
pub struct Job {
    pub entry_id: String,
    pub build_id: VersionId,
    pub user_id: UserId,
    pub project_id: ProjectId,
    /// Taken over from a consumer that stopped renewing it (its builder was lost).
    pub reclaimed: bool,
}

impl Job {
    fn of(stream: &str, entry: &redis::streams::StreamId, reclaimed: bool) -> Result<Self, QueueError> {
        let malformed = |reason: String| QueueError::Malformed {
            key: format!("{stream} {}", entry.id),
            reason,
        };
        let field = |name: &str| -> Result<String, QueueError> {
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
        })
    }
}

/// The build stream and the in-flight claims.
#[derive(Debug, Clone)]
pub struct Queue {
    redis: Redis,
    keys: Keys,
}

impl Queue {
    pub fn new(redis: Redis, keys: Keys) -> Self {
        Self { redis, keys }
    }

    /// The same queue over another connection ([`Redis::another`]).
    pub fn on_another_connection(&self) -> Result<Self, QueueError> {
        Ok(Self::new(self.redis.another()?, self.keys.clone()))
    }

    /// The used request signatures, on this queue's connection.
    pub fn signatures(&self) -> super::Signatures {
        super::Signatures::new(self.redis.clone(), self.keys.clone())
    }

    /// Fans a recorded event out to every API instance (they stream it to SSE clients).
    pub async fn publish_event(&self, event: &crate::db::events::BuildEvent) -> Result<(), QueueError> {
        let body = serde_json::to_string(event).expect("an event always serialises");
        let _: i64 = self
            .redis
            .conn()
            .publish(self.keys.events(&event.build_id.to_string()), body)
            .await?;
        Ok(())
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Claims the project's slot and queues the build in one atomic step, counting it against
    /// its quota (`quotas`). Also records which project the preview `label` names. With
    /// `replace`, a held slot still answers `Conflict`, but the build's quota unit is taken
    /// first (or `OverQuota` answered): the caller replaces the holder and calls again (the
    /// unit is not counted twice), or gives the unit back with [`Queue::refund`].
    pub async fn admit(
        &self,
        build: VersionId,
        user: &UserId,
        project: &ProjectId,
        label: &str,
        quotas: &QuotaLimits,
        replace: bool,
    ) -> Result<Admission, QueueError> {
        let mut conn = self.redis.conn();
        let project_ref = serde_json::to_string(&super::ProjectRef {
            user_id: user.clone(),
            project_id: project.clone(),
        })
        .expect("a project ref always serialises");
        let (code, value, ms): (i64, String, i64) = ADMIT
            .key(self.keys.inflight(user.as_str(), project.as_str()))
            .key(self.keys.stream())
            .key(self.keys.label(label))
            .key(self.keys.quota_new_projects(user.as_str()))
            .key(self.keys.quota_rebuilds(user.as_str(), project.as_str()))
            .arg(build.to_string())
            .arg(user.as_str())
            .arg(project.as_str())
            .arg(project_ref)
            .arg(quotas.new_projects)
            .arg(quotas.rebuilds)
            .arg(quotas.window.as_millis() as u64)
            .arg(if replace { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await?;
        Ok(match code {
            1 => Admission::Queued { entry_id: value },
            0 => Admission::Conflict { holder: value },
            3 => Admission::LabelTaken,
            _ => {
                let quota = match value.as_str() {
                    "new_projects" => Quota::NewProjects,
                    _ => Quota::Rebuilds,
                };
                Admission::OverQuota(QuotaHit {
                    quota,
                    limit: quotas.limit(quota),
                    window: quotas.window,
                    retry_after: std::time::Duration::from_millis(ms.max(0) as u64),
                })
            }
        })
    }

    /// Gives back the quota unit `build` took (a reservation whose build was not queued).
    pub async fn refund(
        &self,
        build: VersionId,
        user: &UserId,
        project: &ProjectId,
    ) -> Result<(), QueueError> {
        let mut conn = self.redis.conn();
        let id = build.to_string();
        let _: (i64, i64) = redis::pipe()
            .zrem(self.keys.quota_new_projects(user.as_str()), &id)
            .zrem(self.keys.quota_rebuilds(user.as_str(), project.as_str()), &id)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The build holding the project's slot, if any.
    pub async fn inflight(&self, user: &UserId, project: &ProjectId) -> Result<Option<String>, QueueError> {
        let mut conn = self.redis.conn();
        Ok(conn
            .get(self.keys.inflight(user.as_str(), project.as_str()))
            .await?)
    }

    /// In one round trip: the build holding the project's slot, if any, whether the KV has a
    /// latest pointer for the project (a hint that it has a deployed version), and whether the
    /// quota the build would count against looks used up (read on this process' clock; the
    /// admission script decides). A used-up quota costs one more round trip, for its
    /// `Retry-After`.
    pub async fn preflight(
        &self,
        user: &UserId,
        project: &ProjectId,
        label: &str,
        quotas: &QuotaLimits,
        signature: Option<&super::SignatureRecord>,
    ) -> Result<Preflight, QueueError> {
        let mut conn = self.redis.conn();
        let mut pipe = redis::pipe();
        pipe.get(self.keys.inflight(user.as_str(), project.as_str()))
            .exists(self.keys.latest(user.as_str(), project.as_str()));
        if let Some(record) = signature {
            record.add_to(&mut pipe);
        }
        let judge = |before: Option<String>| signature.map(|r| r.judge(before));
        if quotas.is_off() {
            let (holder, has_latest, before): (Option<String>, bool, Option<String>) = match signature {
                Some(_) => pipe.query_async(&mut conn).await?,
                None => {
                    let (holder, has_latest) = pipe.query_async(&mut conn).await?;
                    (holder, has_latest, None)
                }
            };
            return Ok(Preflight {
                holder,
                has_latest,
                over_quota: None,
                signature: judge(before),
            });
        }
        let window = quotas.window.as_millis() as u64;
        let now = now_ms();
        let from = now.saturating_sub(window) + PREFLIGHT_SLACK_MS;
        let new_key = self.keys.quota_new_projects(user.as_str());
        let rebuild_key = self.keys.quota_rebuilds(user.as_str(), project.as_str());
        pipe.exists(self.keys.label(label))
            .zcount(&new_key, from, "+inf")
            .zcount(&rebuild_key, from, "+inf");
        let (holder, has_latest, before, known, new_projects, rebuilds): (
            Option<String>,
            bool,
            Option<String>,
            bool,
            u32,
            u32,
        ) = match signature {
            Some(_) => pipe.query_async(&mut conn).await?,
            None => {
                let (holder, has_latest, known, new_projects, rebuilds) = pipe.query_async(&mut conn).await?;
                (holder, has_latest, None, known, new_projects, rebuilds)
            }
        };
        let (quota, key, used) = match known {
            false => (Quota::NewProjects, new_key, new_projects),
            true => (Quota::Rebuilds, rebuild_key, rebuilds),
        };
        let limit = quotas.limit(quota);
        let over_quota = if limit > 0 && used >= limit {
            let oldest: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(&key)
                .arg(from)
                .arg("+inf")
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(1)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await?;
            let frees_at = oldest.first().map_or(now, |(_, at)| *at as u64 + window);
            Some(QuotaHit {
                quota,
                limit,
                window: quotas.window,
                retry_after: std::time::Duration::from_millis(frees_at.saturating_sub(now)),
            })
        } else {
            None
        };
        Ok(Preflight {
            holder,
            has_latest,
            over_quota,
            signature: judge(before),
        })
    }

    /// Holds the project's slot with `value` for at most `ttl` (a short operation such as a
    /// rollback); `Some(holder)` when something else holds it.
    pub async fn hold(
        &self,
        value: &str,
        user: &UserId,
        project: &ProjectId,
        ttl: std::time::Duration,
    ) -> Result<Option<String>, QueueError> {
        let mut conn = self.redis.conn();
        Ok(HOLD
            .key(self.keys.inflight(user.as_str(), project.as_str()))
            .arg(value)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?)
    }

    /// Releases the project's slot if `build` holds it; true when it did.
    pub async fn release(&self, build: &str, user: &UserId, project: &ProjectId) -> Result<bool, QueueError> {
        let mut conn = self.redis.conn();
        let released: i64 = RELEASE
            .key(self.keys.inflight(user.as_str(), project.as_str()))
            .arg(build)
            .invoke_async(&mut conn)
            .await?;
        Ok(released == 1)
    }

    /// Creates the consumer group (and the stream) unless it exists.
    pub async fn ensure_group(&self) -> Result<(), QueueError> {
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
        }
    }

    /// Acknowledges a finished entry and removes it from the stream (there is one group, so a
    /// processed entry is of no further use), when `consumer` still owns it. `false` when the
    /// entry was reclaimed by another consumer (or is gone): then it is left alone.
    pub async fn ack(&self, consumer: &str, entry_id: &str) -> Result<bool, QueueError> {
        self.if_owned(&ACK, consumer, entry_id).await
    }

    /// Runs a script that acts on `entry_id` only while `consumer` owns it; `true` when it did.
    async fn if_owned(
        &self,
        script: &redis::Script,
        consumer: &str,
        entry_id: &str,
    ) -> Result<bool, QueueError> {
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
    pub async fn renew(&self, consumer: &str, entry_id: &str) -> Result<bool, QueueError> {
        self.if_owned(&RENEW, consumer, entry_id).await
    }

    /// Takes over one build whose claim was not renewed for `lease` (its builder died or was
    /// cut off), if there is one.
    pub async fn reclaim(
        &self,
        consumer: &str,
        lease: std::time::Duration,
    ) -> Result<Option<Job>, QueueError> {
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
    async fn job_or_quarantine(
        &self,
        consumer: &str,
        entry: &redis::streams::StreamId,
        reclaimed: bool,
    ) -> Result<Option<Job>, QueueError> {
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
    pub async fn hand_back(&self, consumer: &str, job: &Job, take_over: bool) -> Result<bool, QueueError> {
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
    ) -> Result<bool, QueueError> {
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
    ) -> Result<(), QueueError> {
        let _: i64 = self
            .redis
            .conn()
            .zrem(self.keys.running_of(user.as_str()), slot_member(build, holder))
            .await?;
        Ok(())
    }

    /// The builds that have an entry in the stream (waiting or being built).
    pub async fn builds_in_stream(&self) -> Result<std::collections::HashSet<String>, QueueError> {
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
    ) -> Result<(), QueueError> {
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
    ) -> Result<(), QueueError> {
        self.add_entry(build, user, project, true).await
    }

    async fn add_entry(
        &self,
        build: VersionId,
        user: &UserId,
        project: &ProjectId,
        take_over: bool,
    ) -> Result<(), QueueError> {
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
    pub async fn held_slots(&self) -> Result<Vec<(UserId, ProjectId, String)>, QueueError> {
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

    /// Takes the fleet-wide lock `key` for `ttl` unless another holder has it.
    pub async fn try_lock(
        &self,
        key: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, QueueError> {
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

    /// Tells every builder that `build` was cancelled (the one running it stops it).
    pub async fn announce_cancel(&self, build: VersionId) -> Result<(), QueueError> {
        let _: i64 = self
            .redis
            .conn()
            .publish(self.keys.cancels(), build.to_string())
            .await?;
        Ok(())
    }

    /// Entries in the stream: waiting plus being built.
    pub async fn depth(&self) -> Result<u64, QueueError> {
        let mut conn = self.redis.conn();
        Ok(conn.xlen(self.keys.stream()).await?)
    }
}

/// Reads new builds for one consumer, blocking up to `block` each time. The connection's
/// response timeout always outlives the block: a client that gives up on a blocked read while
/// Redis still answers it would lose the entry it was given.
pub struct StreamReader {
    queue: Queue,
    block: std::time::Duration,
    conn: Option<redis::aio::MultiplexedConnection>,
}

impl StreamReader {
    /// The next new build for `consumer`, or `None` after the block.
    pub async fn read(&mut self, consumer: &str) -> Result<Option<Job>, QueueError> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.queue.redis.dedicated(self.block).await?),
        };
        let opts = StreamReadOptions::default()
            .group(CONSUMER_GROUP, consumer)
            .count(1)
            .block(self.block.as_millis() as usize);
        let stream = self.queue.keys.stream();
        let reply: Result<Option<StreamReadReply>, _> = conn.xread_options(&[&stream], &[">"], &opts).await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                self.conn = None; // reconnect next time
                return Err(e.into());
            }
        };
        let Some(entry) = reply
            .and_then(|r| r.keys.into_iter().next())
            .and_then(|k| k.ids.into_iter().next())
        else {
            return Ok(None);
        };
        self.queue.job_or_quarantine(consumer, &entry, false).await
    }
}

/// A running slot's member: the build and the daemon (consumer) running it, so that a daemon
/// that lost a build to a take-over frees only its own slot, never the new owner's.
fn slot_member(build: VersionId, holder: &str) -> String {
    format!("{build}@{holder}")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
