//! How builders hold, lose and hand back builds (leases, attempts, drains, per-user caps).

use std::time::Duration;

use super::definition::{section, Fallback, Kind, Variable, BUILDER, BUILDER_OPS};

section! {
    title: "Fleet",
    intro: "How builders hold, lose and hand back builds across the fleet.",
    LEASE_SECS = Variable::new(
        "KILN_LEASE_SECS",
        Kind::Positive,
        Fallback::Value("60"),
        BUILDER_OPS,
        "a running build's claim lasts this long unrenewed, in seconds (renewed every third of it)",
    )
    .details("When it runs out, another daemon takes the build over.");
    MAX_ATTEMPTS = Variable::new(
        "KILN_MAX_ATTEMPTS",
        Kind::Positive,
        Fallback::Value("3"),
        BUILDER,
        "attempts a build may have before it fails",
    )
    .details(
        "Builders it may lose before it fails (`builder lost N times`), and attempts that hit an \
         infrastructure error (each sent back to the queue after 1 s, 2 s, 4 s … up to 60 s).",
    );
    CANCEL_GRACE_SECS = Variable::new(
        "KILN_CANCEL_GRACE_SECS",
        Kind::Positive,
        Fallback::Value("10"),
        BUILDER,
        "seconds between SIGTERM and SIGKILL when a build is cancelled or handed back",
    );
    DRAIN_SECS = Variable::new(
        "KILN_DRAIN_SECS",
        Kind::Positive,
        Fallback::Value("300"),
        BUILDER,
        "after SIGTERM, seconds a daemon lets its running builds finish before handing them back",
    );
    RECONCILE_SECS = Variable::new(
        "KILN_RECONCILE_SECS",
        Kind::Positive,
        Fallback::Value("30"),
        BUILDER,
        "how often, in seconds, queued builds missing from the stream are queued again",
    )
    .details("One daemon at a time, by a Redis lock; a build counts once its row is `queued` for over a minute.");
    MAX_RUNNING_PER_USER = Variable::new(
        "KILN_MAX_RUNNING_PER_USER",
        Kind::Positive,
        Fallback::Otherwise("no cap"),
        BUILDER,
        "builds of one user running at once across the whole fleet",
    )
    .details(
        "A daemon that reads a build of a user at the cap puts it back at the end of the queue, \
         so other users' builds go first.",
    )
    .hint("2");
    AFFINITY_MS = Variable::new(
        "KILN_AFFINITY_MS",
        Kind::PositiveOrOff,
        Fallback::Value("2000"),
        BUILDER,
        "how long, in ms, a rebuild may wait for the builder that last built its project (`off` or `0`: any free builder)",
    )
    .details(
        "Only while that builder is alive and has a free slot: a daemon that reads a build \
         preferring another hands it to that builder; once the bound has passed since the build \
         was queued, any daemon takes it.",
    );
}

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
    /// How long a rebuild may wait for the builder that last built its project while that
    /// builder is alive and has a free slot (`KILN_AFFINITY_MS`, default 2000; `off`/`0`:
    /// `None`, any free daemon takes any build).
    pub affinity: Option<Duration>,
}

impl FleetSettings {
    /// How often a running build's claim is renewed.
    pub fn renew_every(&self) -> Duration {
        self.lease / 3
    }
}
