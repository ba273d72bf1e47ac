//! Retention: old versions deleted or archived by the rules (see
//! [`kiln_shared::db::retention`]), and build events and webhook deliveries past their time.
//! A deleted version's objects go with the blob GC that follows, in the same run.

use kiln_shared::db::retention::{self, Rules};
use serde::Serialize;

use crate::{Farm, MaintainError};

/// Rows changed per statement.
const BATCH: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionReport {
    /// Versions the rules expire, and how many were deleted (fewer when one was pinned or
    /// rolled back to meanwhile; 0 in a dry run).
    pub expired: u64,
    pub deleted: u64,
    /// Versions whose output the rules archive, and how many were.
    pub to_archive: u64,
    pub archived: u64,
    /// Build events and webhook deliveries past `KILN_EVENTS_RETAIN_DAYS` (deleted unless dry).
    pub events: u64,
    pub webhook_deliveries: u64,
}

pub async fn apply(farm: &Farm, dry_run: bool) -> Result<RetentionReport, MaintainError> {
    let s = &farm.settings;
    let rules = Rules {
        keep: s.keep_versions,
        archive_after: s.archive_after,
        delete_after: s.delete_after,
        rollback_protect: s.rollback_protect,
    };
    let (expired, aged) = retention::plan(&farm.db, &rules).await?;
    let mut report = RetentionReport {
        expired: expired.len() as u64,
        to_archive: aged.len() as u64,
        ..RetentionReport::default()
    };
    if !dry_run {
        for chunk in expired.chunks(BATCH) {
            report.deleted += retention::delete(&farm.db, chunk, &rules).await?;
        }
        for chunk in aged.chunks(BATCH) {
            report.archived += retention::archive(&farm.db, chunk).await?;
        }
    }
    let before = chrono::Utc::now() - chrono::Duration::from_std(s.events_retain).unwrap_or_default();
    (report.events, report.webhook_deliveries) =
        retention::expire_events(&farm.db, before, BATCH as i64, dry_run).await?;
    if report.deleted + report.archived > 0 {
        tracing::info!(
            deleted = report.deleted,
            archived = report.archived,
            "versions past retention"
        );
    }
    Ok(report)
}
