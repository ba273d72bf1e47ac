//! Queries on `build_events`: the durable record of every step of a build.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgExecutor, PgPool, Row};

use super::DbError;
use crate::domain::{EventType, VersionId};

/// One event of one build. `id` grows by one per event of that build, from 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildEvent {
    pub id: i32,
    pub build_id: VersionId,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub progress: i16,
    pub data: serde_json::Value,
    pub timestamp: DateTime<Utc>,
}

impl BuildEvent {
    fn from_row(row: &PgRow) -> Result<Self, DbError> {
        let build: String = row.try_get("build_id")?;
        let bad = |reason: String| DbError::Corrupt {
            id: build.clone(),
            reason,
        };
        let kind: String = row.try_get("type")?;
        Ok(Self {
            id: row.try_get("id")?,
            build_id: VersionId::parse(&build).map_err(|e| bad(e.to_string()))?,
            kind: kind
                .parse()
                .map_err(|e: crate::domain::UnknownValue| bad(e.to_string()))?,
            progress: row.try_get("progress")?,
            data: row.try_get("data")?,
            timestamp: row.try_get("created_at")?,
        })
    }
}

/// Records an event with the build's next id, and a pending delivery to each webhook that
/// subscribes to it. `None` when the build does not exist. Any executor: in a transaction, the
/// event commits with the status change it records.
pub async fn record(
    db: impl PgExecutor<'_>,
    build: VersionId,
    kind: EventType,
    data: &serde_json::Value,
) -> Result<Option<BuildEvent>, DbError> {
    record_for(db, build, None, kind, data).await
}

/// [`record`] for one attempt of a build: nothing is recorded (`None`) once another attempt
/// has taken the build over, so a lost builder's late events never mix with the new ones.
pub async fn record_for(
    db: impl PgExecutor<'_>,
    build: VersionId,
    attempt: Option<i32>,
    kind: EventType,
    data: &serde_json::Value,
) -> Result<Option<BuildEvent>, DbError> {
    sqlx::query(
        "with next as (
             update versions set last_event_id = last_event_id + 1
             where id = $1 and ($5::int is null or attempts = $5)
               -- One final event a build: a second (a lost builder's settled in by another
               -- daemon while the first one's was still on its way) is not recorded.
               and not ($6 and exists (select 1 from build_events
                                       where build_id = $1 and type = any ($7)))
             returning last_event_id, user_id, project_id),
         event as (
             insert into build_events (build_id, id, type, progress, data)
             select $1, last_event_id, $2, $3, $4 from next
             returning *),
         deliveries as (
             insert into webhook_deliveries (webhook_id, build_id, event_id, event_type, payload)
             select w.id, e.build_id, e.id, e.type,
                    kiln_webhook_payload(e.build_id, e.id, e.type, e.data, e.created_at,
                                         next.user_id, next.project_id)
             from event e cross join next
             join webhooks w on (w.event_types = '{}' or e.type = any (w.event_types))
                            and (w.user_id is null or w.user_id = next.user_id))
         select * from event",
    )
    .bind(build.to_string())
    .bind(kind.as_str())
    .bind(kind.progress())
    .bind(data)
    .bind(attempt)
    .bind(kind.is_final())
    .bind(EventType::FINAL.iter().map(|t| t.as_str()).collect::<Vec<_>>())
    .fetch_optional(db)
    .await?
    .as_ref()
    .map(BuildEvent::from_row)
    .transpose()
}

/// The build's events after `after`, oldest first, at most `limit`.
pub async fn after(
    pool: &PgPool,
    build: VersionId,
    after: i32,
    limit: i64,
) -> Result<Vec<BuildEvent>, DbError> {
    sqlx::query("select * from build_events where build_id = $1 and id > $2 order by id limit $3")
        .bind(build.to_string())
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?
        .iter()
        .map(BuildEvent::from_row)
        .collect()
}

/// The build's newest event.
pub async fn latest(pool: &PgPool, build: VersionId) -> Result<Option<BuildEvent>, DbError> {
    sqlx::query("select * from build_events where build_id = $1 order by id desc limit 1")
        .bind(build.to_string())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(BuildEvent::from_row)
        .transpose()
}

/// The id of the build's newest event (0: none); `None` when there is no such build.
pub async fn last_id(pool: &PgPool, build: VersionId) -> Result<Option<i32>, DbError> {
    Ok(
        sqlx::query_scalar("select last_event_id from versions where id = $1")
            .bind(build.to_string())
            .fetch_optional(pool)
            .await?,
    )
}
