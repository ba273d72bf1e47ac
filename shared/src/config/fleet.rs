//! How builders hold, lose and hand back builds (leases, attempts, drains, per-user caps).

use std::time::Duration;

/// How builders hold, lose and hand back builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSettings {
    /// A running build's claim lasts this long unrenewed (`KILN_LEASE_SECS`, default 60); its
    /// builder renews it every third of that, so the lease is always three renewal periods.
    /// When it runs out, another daemon reclaims the build.
    pub lease: Duration,
    /// Builders lost by one build before it fails (`KILN_MAX_ATTEMPTS`, default 3).
    pub max_attempts: u32,
    /// Between SIGTERM and SIGKILL when a build is cancelled (`KILN_CANCEL_GRACE_SECS`, 10).
    pub cancel_grace: Duration,
    /// How long a daemon told to stop lets its running builds finish before handing them
    /// back to the queue (`KILN_DRAIN_SECS`, default 300).
    pub drain: Duration,
    /// How often queued builds missing from the stream are looked for
    /// (`KILN_RECONCILE_SECS`, default 30; one daemon of the fleet at a time).
    pub reconcile_every: Duration,
    /// Builds of one user running at once across the whole fleet
    /// (`KILN_MAX_RUNNING_PER_USER`; unset: no cap). A daemon that reads a build of a user at
    /// the cap puts it back at the end of the queue and reads on.
    pub max_running_per_user: Option<u32>,
}

impl FleetSettings {
    /// How often a running build's claim is renewed.
    pub fn renew_every(&self) -> Duration {
        self.lease / 3
    }
}
