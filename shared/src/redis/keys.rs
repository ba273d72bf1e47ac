//! The names of Kiln's Redis keys, every one under the configured prefix.

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn stream(&self) -> String {
        format!("{}:builds", self.prefix)
    }

    pub fn inflight(&self, user: &str, project: &str) -> String {
        format!("{}:inflight:{user}:{project}", self.prefix)
    }

    pub fn latest(&self, user: &str, project: &str) -> String {
        format!("{}:latest:{user}:{project}", self.prefix)
    }

    /// What the preview server caches of a project (its access, its share key).
    pub fn project(&self, user: &str, project: &str) -> String {
        format!("{}:project:{user}:{project}", self.prefix)
    }

    /// The generation of a project's gate: bumped by every change of its row, so a copy read
    /// from Postgres before the change is never cached after it.
    pub fn project_generation(&self, user: &str, project: &str) -> String {
        format!("{}:project-gen:{user}:{project}", self.prefix)
    }

    /// The Pub/Sub channel that tells every API instance a project's row changed (its
    /// message: `user/project`), so each drops its own copy of the project's gate.
    pub fn project_changes(&self) -> String {
        format!("{}:project-changes", self.prefix)
    }

    pub fn label(&self, label: &str) -> String {
        format!("{}:label:{label}", self.prefix)
    }

    /// The Pub/Sub channel of one build's events.
    pub fn events(&self, build: &str) -> String {
        format!("{}:events:{build}", self.prefix)
    }

    /// The pattern that matches every build's events channel.
    pub fn events_pattern(&self) -> String {
        format!("{}:events:*", self.prefix)
    }

    /// The live log stream of one build.
    pub fn logs(&self, build: &str) -> String {
        format!("{}:logs:{build}", self.prefix)
    }

    /// The live builders, scored by their last heartbeat (Redis time, ms).
    pub fn builders(&self) -> String {
        format!("{}:builders", self.prefix)
    }

    /// What one builder reported in its last heartbeat.
    pub fn builder(&self, id: &str) -> String {
        format!("{}:builder:{id}", self.prefix)
    }

    /// The lock of the nightly maintenance run (`kiln-ops maintain`), one at a time fleet-wide.
    pub fn maintenance_lock(&self) -> String {
        format!("{}:maintenance-lock", self.prefix)
    }

    /// A counter taken with the maintenance lock: each run's fencing number.
    pub fn maintenance_fence(&self) -> String {
        format!("{}:maintenance-fence", self.prefix)
    }

    /// The lock one daemon of the fleet holds while it reconciles the queue.
    pub fn reconcile_lock(&self) -> String {
        format!("{}:reconcile-lock", self.prefix)
    }

    /// Stream entries no builder could read (missing or invalid fields), kept for an operator
    /// to look at (`XRANGE`), the newest 1,000.
    pub fn dead_letters(&self) -> String {
        format!("{}:builds:dead", self.prefix)
    }

    /// The Pub/Sub channel on which cancelled builds are announced to the builders.
    pub fn cancels(&self) -> String {
        format!("{}:cancels", self.prefix)
    }

    /// A user's running builds, fleet-wide (for `KILN_MAX_RUNNING_PER_USER`).
    pub fn running_of(&self, user: &str) -> String {
        format!("{}:running:{user}", self.prefix)
    }

    /// The builds of a user's new projects in the quota window (sorted set: build id → Redis
    /// time in ms).
    pub fn quota_new_projects(&self, user: &str) -> String {
        format!("{}:quota:new-projects:{user}", self.prefix)
    }

    /// The rebuilds of a project in the quota window (sorted set: build id → Redis time in ms).
    pub fn quota_rebuilds(&self, user: &str, project: &str) -> String {
        format!("{}:quota:rebuilds:{user}:{project}", self.prefix)
    }

    /// The builder that last built a project successfully (its id; expires after a day):
    /// admission copies it into the build's stream entry as `prefer`.
    pub fn affinity(&self, user: &str, project: &str) -> String {
        format!("{}:affinity:{user}:{project}", self.prefix)
    }

    /// Builds handed to the builder they prefer and not yet taken up, fleet-wide (sorted set:
    /// `"{entry id} {builder}"` → the Redis time in ms after which any daemon may take it).
    pub fn handoffs(&self) -> String {
        format!("{}:handoffs", self.prefix)
    }

    /// The builds handed to one builder and not yet taken up (sorted set: entry id → the
    /// same deadline as in [`Keys::handoffs`]).
    pub fn handoffs_to(&self, builder: &str) -> String {
        format!("{}:handoffs:{builder}", self.prefix)
    }

    /// A builder's nudges: a stream its workers read beside the build stream, so a build
    /// handed to it wakes one of them at once.
    pub fn nudges(&self, builder: &str) -> String {
        format!("{}:nudges:{builder}", self.prefix)
    }

    pub fn idempotency(&self, key_hash: &str) -> String {
        format!("{}:idem:{key_hash}", self.prefix)
    }

    /// A used request signature (hex of its bytes), kept while its timestamp is acceptable.
    pub fn signature(&self, mac_hex: &str) -> String {
        format!("{}:sig:{mac_hex}", self.prefix)
    }
}
