//! The fleet's package cache (`packages/` in the artifact store, indexed by `package_cache`):
//! every package no install used for `KILN_PACKAGE_CACHE_DAYS` loses its row, then each
//! tarball no row names any more is deleted; a tarball no row names that is older than the
//! grace period (a daemon stored it, then could not record it) is deleted too.
//!
//! A row is deleted only if it was not used since it was read (compare-and-set on its
//! `last_used_at`). A daemon recording the same tarball again while it is being deleted loses
//! only that object: its next install finds the row without the object, fetches the package
//! again and stores it (a miss, never a wrong package: objects are checked on the way out).

use futures::StreamExt;
use kiln_shared::db::packages as index;
use kiln_shared::store::Artifacts;
use serde::Serialize;

use crate::{Farm, MaintainError};

/// Rows read at a time.
const PAGE: i64 = 1000;
/// The prefix of the tarballs.
const TARBALLS: &str = "packages/sha512/";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageReport {
    /// Packages (name@version) unused for the period, forgotten.
    pub forgotten: u64,
    /// Tarballs deleted from the store, and their bytes.
    pub deleted: u64,
    pub deleted_bytes: u64,
}

pub async fn collect(farm: &Farm, dry_run: bool) -> Result<PackageReport, MaintainError> {
    let mut report = PackageReport::default();
    let unused = farm.settings.package_cache_unused;
    loop {
        let rows = index::unused(&farm.db, unused, PAGE).await?;
        let full = rows.len() as i64 == PAGE;
        for row in &rows {
            if dry_run {
                report.forgotten += 1;
                report.deleted += 1;
                report.deleted_bytes += row.bytes.max(0) as u64;
                continue;
            }
            if !index::forget(&farm.db, row).await? {
                continue; // used meanwhile
            }
            report.forgotten += 1;
            if !index::referenced(&farm.db, &row.integrity).await? {
                let key = Artifacts::package_key(&row.integrity);
                if let Some(size) = farm.artifacts.objects().size(&key).await? {
                    farm.artifacts.objects().delete(&key).await?;
                    report.deleted += 1;
                    report.deleted_bytes += size;
                }
            }
        }
        if dry_run || !full {
            break;
        }
    }
    // Tarballs no row names, past the grace period.
    let before = chrono::Utc::now()
        - chrono::Duration::from_std(farm.settings.gc_grace).unwrap_or(chrono::Duration::zero());
    let mut listing = farm.artifacts.objects().list(TARBALLS);
    let mut orphans = Vec::new();
    while let Some(object) = listing.recv().await {
        let object = object?;
        let Some(hex) = object.key.strip_prefix(TARBALLS) else {
            continue;
        };
        if object.modified < before && !index::referenced(&farm.db, hex).await? {
            orphans.push(object);
        }
    }
    let mut deletes = futures::stream::iter(orphans.into_iter().map(|object| async move {
        if !dry_run {
            farm.artifacts.objects().delete(&object.key).await?;
        }
        Ok::<_, MaintainError>(object.size)
    }))
    .buffer_unordered(8);
    while let Some(size) = deletes.next().await {
        report.deleted += 1;
        report.deleted_bytes += size?;
    }
    if report.deleted > 0 || report.forgotten > 0 {
        tracing::info!(?report, dry_run, "package cache collected");
    }
    Ok(report)
}
