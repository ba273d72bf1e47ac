//! Affinity: a rebuild goes to the builder that last built its project (its dependency tree is
//! warm there), for at most a short bound and only while that builder is alive and has a free
//! slot.
//!
//! After a successful build its builder records itself as the project's affinity
//! ([`Queue::remember_builder`]); admission copies it into the build's stream entry as
//! `prefer`. A daemon that reads an entry preferring another builder calls [`Queue::hand_to`]:
//! when the preferred builder heartbeats, holds fewer entries than its capacity and the entry is
//! younger than the bound (`KILN_AFFINITY_MS`), the entry moves to that builder's pending list
//! (`XCLAIM`: it never leaves the stream, so it is never lost), is noted in the handoffs with a
//! deadline (queued at + bound), and the builder is nudged through its nudges stream, which its
//! workers read beside the build stream. Before each read a worker calls [`Queue::take`]: a
//! build handed to it, else a handed build whose deadline passed (any daemon takes it:
//! `overdue`), else a build whose consumer was lost (`XAUTOCLAIM`, as before). Each hand-over
//! is one script, so exactly one consumer owns an entry at any time: none runs twice.

use std::sync::LazyLock;
use std::time::Duration;

use redis::AsyncCommands;

use super::consume::owned_script;
use super::{Job, Queue, CONSUMER_GROUP};
use crate::domain::{ProjectId, UserId};
use crate::redis::RedisError;

static HAND_TO: LazyLock<redis::Script> = LazyLock::new(|| owned_script(include_str!("hand_to.lua")));
static TAKE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("take.lua")));

/// How long a project's affinity lasts after its last successful build.
pub const AFFINITY_TTL: Duration = Duration::from_secs(24 * 3600);

/// How a build came to the daemon that runs it, as far as affinity goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Affinity {
    /// The build prefers no builder (or affinity is off).
    None,
    /// Read by the builder it prefers.
    Preferred,
    /// Handed to this builder (the one it prefers) by the daemon that read it.
    Handed,
    /// Run here although it prefers another builder: why.
    Elsewhere { prefer: String, why: Elsewhere },
}

/// Why a build ran on another builder than the one it prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elsewhere {
    /// The preferred builder's slots were all taken.
    Busy,
    /// The preferred builder has not heartbeated within the lease, left the fleet, or drains.
    Dead,
    /// The bound passed (queued longer ago than `KILN_AFFINITY_MS`, or handed to the preferred
    /// builder, which did not take it up in time).
    Bound,
}

impl Elsewhere {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Elsewhere::Busy => "busy",
            Elsewhere::Dead => "dead",
            Elsewhere::Bound => "bound",
        }
    }
}

impl Affinity {
    /// The metric label of where the build ran.
    pub fn label(&self) -> &'static str {
        match self {
            Affinity::None => "none",
            Affinity::Preferred => "preferred",
            Affinity::Handed => "handed",
            Affinity::Elsewhere { why, .. } => why.label(),
        }
    }

    /// The line the build's log gets, naming the builder running it (`here`).
    pub fn log_line(&self, here: &str) -> Option<String> {
        Some(match self {
            Affinity::None => return None,
            Affinity::Preferred => {
                format!("[kiln] building on {here}, the builder that built this project last")
            }
            Affinity::Handed => format!(
                "[kiln] handed to {here}, the builder that built this project last (it had a free slot)"
            ),
            Affinity::Elsewhere { prefer, why } => {
                let reason = match why {
                    Elsewhere::Busy => "is busy",
                    Elsewhere::Dead => "is not alive (no heartbeat) or is draining",
                    Elsewhere::Bound => "did not take the build within KILN_AFFINITY_MS",
                };
                format!("[kiln] preferred builder {prefer} {reason}; building on {here}")
            }
        })
    }
}

/// What [`Queue::hand_to`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandTo {
    /// The preferred builder has the entry now.
    Handed,
    /// The entry stays with this consumer, to run here: why.
    Keep(Elsewhere),
    /// This consumer does not own the entry any more (reclaimed meanwhile): leave it.
    Lost,
}

impl Queue {
    /// Records `builder` as the one that last built the project successfully.
    pub async fn remember_builder(
        &self,
        user: &UserId,
        project: &ProjectId,
        builder: &str,
    ) -> Result<(), RedisError> {
        let _: () = self
            .redis
            .conn()
            .set_ex(
                self.keys.affinity(user.as_str(), project.as_str()),
                builder,
                AFFINITY_TTL.as_secs(),
            )
            .await?;
        Ok(())
    }

    /// The builder the project's next build will prefer, if any.
    pub async fn preferred_builder(
        &self,
        user: &UserId,
        project: &ProjectId,
    ) -> Result<Option<String>, RedisError> {
        Ok(self
            .redis
            .conn()
            .get(self.keys.affinity(user.as_str(), project.as_str()))
            .await?)
    }

    /// Hands `job` (read by `consumer`) to the builder it prefers when that builder is alive
    /// (heartbeat within `heartbeat_lease`), has a free slot, and the build was queued less than
    /// `bound` ago. See the module's documentation.
    pub async fn hand_to(
        &self,
        consumer: &str,
        job: &Job,
        prefer: &str,
        bound: Duration,
        heartbeat_lease: Duration,
    ) -> Result<HandTo, RedisError> {
        let answer: String = HAND_TO
            .key(self.keys.stream())
            .key(self.keys.handoffs())
            .key(self.keys.builders())
            .key(self.keys.builder(prefer))
            .key(self.keys.handoffs_to(prefer))
            .key(self.keys.nudges(prefer))
            .arg(CONSUMER_GROUP)
            .arg(consumer)
            .arg(&job.entry_id)
            .arg(prefer)
            .arg(bound.as_millis() as u64)
            .arg(heartbeat_lease.as_millis() as u64)
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(match answer.as_str() {
            "handed" => HandTo::Handed,
            "busy" => HandTo::Keep(Elsewhere::Busy),
            "dead" => HandTo::Keep(Elsewhere::Dead),
            "bound" => HandTo::Keep(Elsewhere::Bound),
            _ => HandTo::Lost,
        })
    }

    /// The build `consumer` takes before it reads new ones: one handed to it, else one handed
    /// to another builder and overdue, else one whose consumer stopped renewing it for `lease`
    /// (see [`Queue::reclaim`]). `nudges` are the nudge entries the reader read, acknowledged
    /// and deleted here.
    pub async fn take(
        &self,
        consumer: &str,
        lease: Duration,
        nudges: &[String],
    ) -> Result<Option<Job>, RedisError> {
        let mut script = TAKE.key(self.keys.stream());
        script
            .key(self.keys.handoffs())
            .key(self.keys.handoffs_to(consumer))
            .key(self.keys.nudges(consumer))
            .arg(CONSUMER_GROUP)
            .arg(consumer)
            .arg(lease.as_millis() as u64)
            .arg(self.keys.handoffs_to(""));
        for id in nudges {
            script.arg(id);
        }
        let reply: Vec<redis::Value> = script.invoke_async(&mut self.redis.conn()).await?;
        let mut parts = reply.into_iter();
        let (Some(kind), Some(id)) = (parts.next(), parts.next()) else {
            return Ok(None);
        };
        let text = |v: redis::Value| {
            redis::from_redis_value::<String>(v).map_err(|e| RedisError::Malformed {
                key: self.keys.stream(),
                reason: format!("the take script answered {e}"),
            })
        };
        let (kind, id) = (text(kind)?, text(id)?);
        let mut map = std::collections::HashMap::new();
        let rest: Vec<redis::Value> = parts.collect();
        for pair in rest.chunks_exact(2) {
            map.insert(text(pair[0].clone())?, pair[1].clone());
        }
        let entry = redis::streams::StreamId {
            id,
            map,
            ..Default::default()
        };
        let Some(mut job) = self.job_or_quarantine(consumer, &entry, kind == "lost").await? else {
            return Ok(None);
        };
        job.affinity = match (kind.as_str(), job.prefer.clone()) {
            ("handed", _) => Affinity::Handed,
            ("overdue", Some(prefer)) => Affinity::Elsewhere {
                prefer,
                why: Elsewhere::Bound,
            },
            _ => Affinity::None,
        };
        Ok(Some(job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_says_where_a_build_ran_and_why() {
        let busy = Affinity::Elsewhere {
            prefer: "b1".into(),
            why: Elsewhere::Busy,
        };
        assert_eq!(
            busy.log_line("b2").as_deref(),
            Some("[kiln] preferred builder b1 is busy; building on b2")
        );
        assert_eq!(busy.label(), "busy");
        assert_eq!(Affinity::None.log_line("b2"), None);
        assert!(Affinity::Handed.log_line("b1").unwrap().contains("handed to b1"));
        assert_eq!(Affinity::Preferred.label(), "preferred");
    }
}
