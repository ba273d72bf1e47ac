//! What the nightly maintenance run keeps and for how long (`KILN_RETAIN_*`, `KILN_GC_*`,
//! `KILN_VERIFY_SAMPLE`, `KILN_PACKAGE_CACHE_DAYS`).

use std::time::Duration;

use super::source::{ConfigError, Source};

use super::definition::{section, Fallback, Kind, Variable, BUILDER, OPS};

section! {
    title: "Maintenance",
    intro: "What the nightly maintenance runs keep and for how long: `kiln-ops maintain` (docs/operations/maintenance.md) and `kiln-builder maintain` on each builder host.",
    RETAIN_VERSIONS = Variable::new(
        "KILN_RETAIN_VERSIONS",
        Kind::Positive,
        Fallback::Value("200"),
        OPS,
        "versions kept per project, newest first (older ones are deleted unless protected)",
    )
    .details("Protected: pinned, the current latest, a recent rollback's target.");
    ARCHIVE_AFTER_DAYS = Variable::new(
        "KILN_ARCHIVE_AFTER_DAYS",
        Kind::Positive,
        Fallback::Value("90"),
        OPS,
        "a kept version this many days old has its output archived",
    )
    .details("Its blobs move to `archive/` and are still served.");
    DELETE_AFTER_DAYS = Variable::new(
        "KILN_DELETE_AFTER_DAYS",
        Kind::Positive,
        Fallback::Value("365"),
        OPS,
        "a version this many days old is deleted unless protected",
    )
    .details("It must not be shorter than `KILN_ARCHIVE_AFTER_DAYS`.");
    ROLLBACK_PROTECT_DAYS = Variable::new(
        "KILN_ROLLBACK_PROTECT_DAYS",
        Kind::Positive,
        Fallback::Value("30"),
        OPS,
        "a rollback this many days recent protects its target from retention",
    );
    GC_GRACE_MINUTES = Variable::new(
        "KILN_GC_GRACE_MINUTES",
        Kind::Positive,
        Fallback::Value("360"),
        OPS,
        "an unreferenced blob younger than this many minutes is left alone (a build may be uploading it)",
    );
    GC_TRASH_DAYS = Variable::new(
        "KILN_GC_TRASH_DAYS",
        Kind::Positive,
        Fallback::Value("7"),
        OPS,
        "days a collected blob waits in `trash/` before it is deleted for good",
    )
    .details("It comes back if anything references it meanwhile.");
    VERIFY_SAMPLE = Variable::new(
        "KILN_VERIFY_SAMPLE",
        Kind::Count,
        Fallback::Value("1000"),
        OPS,
        "blobs read back and hashed per run (0: none)",
    )
    .details("Every referenced blob's existence and size are checked on every run.");
    EVENTS_RETAIN_DAYS = Variable::new(
        "KILN_EVENTS_RETAIN_DAYS",
        Kind::Positive,
        Fallback::Value("90"),
        OPS,
        "build events and webhook deliveries older than this many days are deleted",
    )
    .details("Logs live as long as their version.");
    PACKAGE_CACHE_DAYS = Variable::new(
        "KILN_PACKAGE_CACHE_DAYS",
        Kind::Positive,
        Fallback::Value("30"),
        OPS,
        "a package in the fleet's package cache that no install used for this many days is deleted",
    );
    PNPM_STORE_MAX_MB = Variable::new(
        "KILN_PNPM_STORE_MAX_MB",
        Kind::Positive,
        Fallback::Value("20480"),
        BUILDER,
        "`kiln-builder maintain` empties a builder host's pnpm store still larger than this after `pnpm store prune`, in MB",
    );
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceSettings {
    /// Versions kept per project, newest first (`KILN_RETAIN_VERSIONS`, default 200). Older ones
    /// are deleted unless protected (pinned, the current latest, a recent rollback's target).
    pub keep_versions: u64,
    /// A kept version this old has its output archived (`KILN_ARCHIVE_AFTER_DAYS`, default 90).
    pub archive_after: Duration,
    /// A version this old is deleted unless protected (`KILN_DELETE_AFTER_DAYS`, default 365).
    pub delete_after: Duration,
    /// A rollback this recent protects its target (`KILN_ROLLBACK_PROTECT_DAYS`, default 30).
    pub rollback_protect: Duration,
    /// An unreferenced object younger than this is left alone: a build may be uploading it
    /// right now (`KILN_GC_GRACE_MINUTES`, default 360).
    pub gc_grace: Duration,
    /// A collected blob waits this long in `trash/` before it is deleted for good, and comes
    /// back if anything references it meanwhile (`KILN_GC_TRASH_DAYS`, default 7).
    pub trash_for: Duration,
    /// Blobs read back and hashed per run (`KILN_VERIFY_SAMPLE`, default 1000; 0: none). Every
    /// referenced blob's existence and size are checked on every run.
    pub verify_sample: u64,
    /// Build events and webhook deliveries older than this are deleted
    /// (`KILN_EVENTS_RETAIN_DAYS`, default 90). Logs live as long as their version.
    pub events_retain: Duration,
    /// A package of the fleet's package cache no install used for this long is deleted
    /// (`KILN_PACKAGE_CACHE_DAYS`, default 30).
    pub package_cache_unused: Duration,
    /// A builder host's pnpm store is emptied by `kiln-builder maintain` when it is still
    /// larger than this after `pnpm store prune` (`KILN_PNPM_STORE_MAX_MB`, default 20480).
    pub pnpm_store_max_bytes: u64,
}

const DAY: u64 = 24 * 3600;

impl MaintenanceSettings {
    pub(super) fn load(src: &Source) -> Result<Self, ConfigError> {
        let days = |var: &Variable| src.positive(var).map(|d| Duration::from_secs(d * DAY));
        let s = Self {
            keep_versions: src.positive(&RETAIN_VERSIONS)?,
            archive_after: days(&ARCHIVE_AFTER_DAYS)?,
            delete_after: days(&DELETE_AFTER_DAYS)?,
            rollback_protect: days(&ROLLBACK_PROTECT_DAYS)?,
            gc_grace: Duration::from_secs(60 * src.positive(&GC_GRACE_MINUTES)?),
            trash_for: days(&GC_TRASH_DAYS)?,
            verify_sample: src.parsed(&VERIFY_SAMPLE, "a number of blobs")?,
            events_retain: days(&EVENTS_RETAIN_DAYS)?,
            package_cache_unused: days(&PACKAGE_CACHE_DAYS)?,
            pnpm_store_max_bytes: src.positive(&PNPM_STORE_MAX_MB)? << 20,
        };
        if s.delete_after < s.archive_after {
            return Err(ConfigError::Invalid {
                var: DELETE_AFTER_DAYS.name,
                reason: "must not be shorter than KILN_ARCHIVE_AFTER_DAYS".into(),
            });
        }
        Ok(s)
    }
}

impl Default for MaintenanceSettings {
    fn default() -> Self {
        Self::load(&Source::new(Default::default(), Default::default())).expect("the defaults are valid")
    }
}
