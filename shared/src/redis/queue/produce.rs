//! The producer's side: admission (the API) claims a project's slot and queues its build in
//! one step, counted against the fleet-wide quotas, after a one-round-trip preflight.

use std::sync::LazyLock;

use super::Queue;
use crate::domain::{ProjectId, UserId, VersionId};
use crate::redis::{ProjectRef, RedisError, SignatureRecord, SignatureUse};

static ADMIT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("admit.lua")));

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
    pub signature: Option<SignatureUse>,
}

/// The preflight reads quotas on the API's clock, not Redis': units this close to leaving the
/// window are not counted, so a clock a little ahead of Redis' never refuses a build the
/// admission script would take (the script decides, on Redis' clock).
const PREFLIGHT_SLACK_MS: u64 = 5_000;

impl Queue {
    /// Claims the project's slot and queues the build in one atomic step, counting it against
    /// its quota (`quotas`). Also records which project the preview `label` names, and marks
    /// the entry with the builder that last built the project (`prefer`, see [`super::affinity`]). With
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
    ) -> Result<Admission, RedisError> {
        let mut conn = self.redis.conn();
        let project_ref = serde_json::to_string(&ProjectRef {
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
            .key(self.keys.affinity(user.as_str(), project.as_str()))
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
    ) -> Result<(), RedisError> {
        let mut conn = self.redis.conn();
        let id = build.to_string();
        let _: (i64, i64) = redis::pipe()
            .zrem(self.keys.quota_new_projects(user.as_str()), &id)
            .zrem(self.keys.quota_rebuilds(user.as_str(), project.as_str()), &id)
            .query_async(&mut conn)
            .await?;
        Ok(())
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
        signature: Option<&SignatureRecord>,
    ) -> Result<Preflight, RedisError> {
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
            // `now` was read before the pipeline ran: a unit a concurrent admission added since
            // is scored later than it. No unit frees more than a window after this answer.
            let wait = frees_at.saturating_sub(now).min(window);
            Some(QuotaHit {
                quota,
                limit,
                window: quotas.window,
                retry_after: std::time::Duration::from_millis(wait),
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
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
