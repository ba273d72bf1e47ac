//! Where a queued build stands and when it should start: the builds ahead of it, the fleet's
//! live slots (builder heartbeats) and the median run time of recent builds.

use chrono::{DateTime, Utc};
use kiln_shared::db::versions::{self, QueueStanding};
use kiln_shared::domain::VersionId;
use kiln_shared::redis::FleetCapacity;
use serde::Serialize;

use super::context::Builds;
use crate::error::ApiError;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueueEstimate {
    /// Builds that start before this one.
    pub queue_position: i64,
    /// `None` when there is nothing to estimate from (see `note`).
    pub estimated_start_at: Option<DateTime<Utc>>,
    pub estimated_wait_secs: Option<f64>,
    pub live_builders: u64,
    pub slots: u64,
    pub running: i64,
    pub median_build_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

/// The estimate, from its inputs. The build starts when a slot is free for it: with `free`
/// slots idle, the builds ahead beyond those must finish first, and the fleet finishes one
/// every `median / slots` seconds on average.
pub fn estimate(standing: QueueStanding, fleet: FleetCapacity, now: DateTime<Utc>) -> QueueEstimate {
    let mut out = QueueEstimate {
        queue_position: standing.ahead,
        estimated_start_at: None,
        estimated_wait_secs: None,
        live_builders: fleet.builders,
        slots: fleet.slots,
        running: standing.running,
        median_build_secs: standing.median_build_secs,
        note: None,
    };
    if fleet.slots == 0 {
        out.note = Some("no live builders: the build starts when one joins");
        return out;
    }
    let free = (fleet.slots as i64 - standing.running).max(0);
    let wait = if standing.ahead < free {
        0.0
    } else {
        let Some(median) = standing.median_build_secs else {
            out.note = Some("no finished builds yet to estimate from");
            return out;
        };
        let must_finish = (standing.ahead - free + 1) as f64;
        must_finish * median / fleet.slots as f64
    };
    out.estimated_wait_secs = Some((wait * 10.0).round() / 10.0);
    out.estimated_start_at = Some(now + chrono::Duration::milliseconds((wait * 1000.0) as i64));
    out
}

/// The estimate for a queued build, read now.
pub async fn for_build(b: &Builds<'_>, id: VersionId) -> Result<QueueEstimate, ApiError> {
    let (standing, fleet) = tokio::join!(versions::queue_standing(b.db, id), b.fleet.capacity());
    let fleet = fleet.map_err(|e| ApiError::Unavailable {
        what: "the builder fleet",
        cause: e.into(),
    })?;
    Ok(estimate(standing?, fleet, Utc::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(ahead: i64, running: i64, median: Option<f64>) -> QueueStanding {
        QueueStanding {
            ahead,
            running,
            median_build_secs: median,
        }
    }

    fn fleet(builders: u64, slots: u64) -> FleetCapacity {
        FleetCapacity { builders, slots }
    }

    #[test]
    fn waits_for_the_builds_ahead_to_free_a_slot() {
        let now = Utc::now();
        // Two slots, both busy, three ahead: four builds must finish, two at a time.
        let e = estimate(standing(3, 2, Some(10.0)), fleet(2, 2), now);
        assert_eq!(e.estimated_wait_secs, Some(20.0));
        assert_eq!(e.estimated_start_at, Some(now + chrono::Duration::seconds(20)));
        // A free slot and nobody ahead: now.
        let e = estimate(standing(0, 1, None), fleet(2, 2), now);
        assert_eq!(e.estimated_wait_secs, Some(0.0));
    }

    #[test]
    fn says_why_it_cannot_estimate() {
        let now = Utc::now();
        let e = estimate(standing(4, 0, Some(10.0)), fleet(0, 0), now);
        assert_eq!((e.estimated_start_at, e.queue_position), (None, 4));
        assert!(e.note.unwrap().contains("no live builders"));
        let e = estimate(standing(4, 1, None), fleet(1, 1), now);
        assert!(e.note.unwrap().contains("no finished builds"));
    }
}
