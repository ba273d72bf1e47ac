//! What the nightly maintenance run keeps and for how long (`KILN_RETAIN_*`, `KILN_GC_*`,
//! `KILN_VERIFY_SAMPLE`).

use std::time::Duration;

use super::source::{ConfigError, Source};

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
    /// A builder host's pnpm store is emptied by `kiln-builder maintain` when it is still
    /// larger than this after `pnpm store prune` (`KILN_PNPM_STORE_MAX_MB`, default 20480).
    pub pnpm_store_max_bytes: u64,
}

const DAY: u64 = 24 * 3600;

impl MaintenanceSettings {
    pub(super) fn load(src: &Source) -> Result<Self, ConfigError> {
        let days = |var, default| src.positive(var, default).map(|d| Duration::from_secs(d * DAY));
        let s = Self {
            keep_versions: src.positive("KILN_RETAIN_VERSIONS", 200)?,
            archive_after: days("KILN_ARCHIVE_AFTER_DAYS", 90)?,
            delete_after: days("KILN_DELETE_AFTER_DAYS", 365)?,
            rollback_protect: days("KILN_ROLLBACK_PROTECT_DAYS", 30)?,
            gc_grace: Duration::from_secs(60 * src.positive("KILN_GC_GRACE_MINUTES", 360)?),
            trash_for: days("KILN_GC_TRASH_DAYS", 7)?,
            verify_sample: src.parsed("KILN_VERIFY_SAMPLE", 1000, "a number of blobs")?,
            events_retain: days("KILN_EVENTS_RETAIN_DAYS", 90)?,
            pnpm_store_max_bytes: src.positive("KILN_PNPM_STORE_MAX_MB", 20480)? << 20,
        };
        if s.delete_after < s.archive_after {
            return Err(ConfigError::Invalid {
                var: "KILN_DELETE_AFTER_DAYS",
                reason: "must not be shorter than KILN_ARCHIVE_AFTER_DAYS".into(),
            });
        }
        Ok(s)
    }
}

impl Default for MaintenanceSettings {
    fn default() -> Self {
        Self::load(&Source {
            env: Default::default(),
            file: Default::default(),
        })
        .expect("the defaults are valid")
    }
}
