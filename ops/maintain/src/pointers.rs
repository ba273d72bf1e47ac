//! Latest pointers: each project's KV pointer must name its latest deployed version in
//! Postgres (the history is the truth). A missing or wrong pointer is set from Postgres with a
//! compare-and-set on the value read, so a deploy or rollback that lands meanwhile wins.

use kiln_shared::db::versions;
use kiln_shared::domain::{ProjectId, UserId};
use kiln_shared::redis::LatestPointer;
use serde::Serialize;

use crate::{Farm, MaintainError};

/// Projects read from Postgres at a time.
const PAGE: i64 = 500;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PointerReport {
    /// Projects with a deployed version.
    pub checked: u64,
    /// `user/project` of pointers that were absent.
    pub missing: Vec<String>,
    /// `user/project` of pointers that named another version (or were not a pointer).
    pub wrong: Vec<String>,
    /// Pointers set from Postgres (0 in a dry run).
    pub repaired: u64,
    /// Pointers that changed while the run looked at them (a deploy or a rollback): left alone.
    pub changed_meanwhile: u64,
}

pub async fn check(farm: &Farm, dry_run: bool) -> Result<PointerReport, MaintainError> {
    let mut report = PointerReport::default();
    let mut after: Option<(UserId, ProjectId)> = None;
    loop {
        let page =
            versions::latest_deployed_page(&farm.db, after.as_ref().map(|(u, p)| (u, p)), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.user_id.clone(), last.project_id.clone()));
        let projects: Vec<(UserId, ProjectId)> = page
            .iter()
            .map(|v| (v.user_id.clone(), v.project_id.clone()))
            .collect();
        let raws = farm.queue.latest_raw_many(&projects).await?;
        for (version, raw) in page.iter().zip(raws) {
            report.checked += 1;
            let named = raw
                .as_deref()
                .and_then(|r| serde_json::from_str::<LatestPointer>(r).ok())
                .map(|p| p.latest_version_id);
            if named == Some(version.id) {
                continue;
            }
            let name = format!("{}/{}", version.user_id, version.project_id);
            match raw {
                None => report.missing.push(name),
                Some(_) => report.wrong.push(name),
            }
            if dry_run {
                continue;
            }
            let pointer = LatestPointer {
                latest_version_id: version.id,
                preview_url: farm.urls.version_url(version.id),
                timestamp: version.finished_at.unwrap_or_else(chrono::Utc::now),
            };
            if farm
                .queue
                .replace_latest(&version.user_id, &version.project_id, raw.as_deref(), &pointer)
                .await?
            {
                report.repaired += 1;
            } else {
                report.changed_meanwhile += 1;
            }
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    if report.repaired > 0 {
        tracing::warn!(
            missing = report.missing.len(),
            wrong = report.wrong.len(),
            repaired = report.repaired,
            "latest pointers repaired from Postgres"
        );
    }
    Ok(report)
}
