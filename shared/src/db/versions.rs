//! Queries on the `versions` table.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};

use super::DbError;
use crate::domain::{BuildStatus, ProjectId, Step, UserId, VersionId};
use crate::store::{Artifacts, Manifest, StoreError};

/// A build's timings and sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub queue_ms: Option<i64>,
    pub generate_ms: Option<i64>,
    pub install_ms: Option<i64>,
    pub build_ms: Option<i64>,
    pub upload_ms: Option<i64>,
    pub total_ms: Option<i64>,
    pub output_bytes: Option<i64>,
    pub file_count: Option<i32>,
}

/// One version (= one build).
#[derive(Debug, Clone)]
pub struct Version {
    pub id: VersionId,
    pub user_id: UserId,
    pub project_id: ProjectId,
    pub project_label: String,
    pub kind: String,
    pub prompt: Option<String>,
    pub framework: Option<String>,
    pub parent_version_id: Option<VersionId>,
    pub status: BuildStatus,
    pub generate: bool,
    pub error: Option<String>,
    pub failed_step: Option<Step>,
    pub node_version: Option<String>,
    pub pnpm_version: Option<String>,
    /// The version's source tree (null in rows recorded before migration 0004, and in lists).
    pub source_manifest: Option<Manifest>,
    /// Where the source tree of a row recorded before migration 0004 is in the store.
    pub source_manifest_key: Option<String>,
    pub output_manifest_key: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub attempts: i32,
    /// Attempts whose builder was lost.
    pub lost: i32,
    /// The builder that ran (or runs) the latest attempt.
    pub builder_id: Option<String>,
    /// The build this one retries.
    pub retry_of: Option<VersionId>,
    /// The build that replaced this one while it was queued.
    pub superseded_by: Option<VersionId>,
    pub pinned: bool,
    /// When maintenance archived the output (still served; see README.md, "Maintenance").
    pub archived_at: Option<DateTime<Utc>>,
    /// Maintenance found a blob of this version gone for good: rebuild it to serve it whole.
    pub needs_rebuild: bool,
    pub metrics: Metrics,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

fn corrupt(id: &str, reason: impl ToString) -> DbError {
    DbError::Corrupt {
        id: id.to_owned(),
        reason: reason.to_string(),
    }
}

impl Version {
    fn from_row(row: &PgRow) -> Result<Self, DbError> {
        let id: String = row.try_get("id")?;
        let bad = |r: &dyn std::fmt::Display| corrupt(&id, r.to_string());
        let parent: Option<String> = row.try_get("parent_version_id")?;
        let status: String = row.try_get("status")?;
        let failed_step: Option<String> = row.try_get("failed_step")?;
        let id_field = |name: &str| -> Result<Option<VersionId>, DbError> {
            let raw: Option<String> = row.try_get(name)?;
            raw.map(|r| VersionId::parse(&r)).transpose().map_err(|e| bad(&e))
        };
        Ok(Version {
            id: VersionId::parse(&id).map_err(|e| bad(&e))?,
            user_id: UserId::parse(row.try_get("user_id")?).map_err(|e| bad(&e))?,
            project_id: ProjectId::parse(row.try_get("project_id")?).map_err(|e| bad(&e))?,
            project_label: row.try_get("project_label")?,
            kind: row.try_get("kind")?,
            prompt: row.try_get("prompt")?,
            framework: row.try_get("framework")?,
            parent_version_id: parent
                .map(|p| VersionId::parse(&p))
                .transpose()
                .map_err(|e| bad(&e))?,
            status: status.parse().map_err(|e| bad(&e))?,
            generate: row.try_get("generate")?,
            error: row.try_get("error")?,
            failed_step: failed_step
                .map(|s| s.parse())
                .transpose()
                .map_err(|e: crate::domain::UnknownValue| bad(&e))?,
            node_version: row.try_get("node_version")?,
            pnpm_version: row.try_get("pnpm_version")?,
            source_manifest: row
                .try_get::<Option<Json<Manifest>>, _>("source_manifest")?
                .map(|m| m.0),
            source_manifest_key: row.try_get("source_manifest_key")?,
            output_manifest_key: row.try_get("output_manifest_key")?,
            metadata: row.try_get("metadata")?,
            attempts: row.try_get("attempts")?,
            lost: row.try_get("lost")?,
            builder_id: row.try_get("builder_id")?,
            retry_of: id_field("retry_of")?,
            superseded_by: id_field("superseded_by")?,
            pinned: row.try_get("pinned")?,
            archived_at: row.try_get("archived_at")?,
            needs_rebuild: row.try_get("needs_rebuild")?,
            metrics: Metrics {
                queue_ms: row.try_get("queue_ms")?,
                generate_ms: row.try_get("generate_ms")?,
                install_ms: row.try_get("install_ms")?,
                build_ms: row.try_get("build_ms")?,
                upload_ms: row.try_get("upload_ms")?,
                total_ms: row.try_get("total_ms")?,
                output_bytes: row.try_get("output_bytes")?,
                file_count: row.try_get("file_count")?,
            },
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

impl Version {
    /// The version's source tree: from the row, or (rows recorded before migration 0004) from
    /// the store. Rows read by [`list`] carry no tree; read the version by id first.
    pub async fn sources(&self, artifacts: &Artifacts) -> Result<Manifest, StoreError> {
        if let Some(m) = &self.source_manifest {
            return Ok(m.clone());
        }
        match self.source_manifest_key.as_deref() {
            None => Ok(Manifest::default()),
            Some(key) => artifacts
                .get_manifest(key)
                .await?
                .ok_or_else(|| StoreError::MissingManifest { key: key.to_owned() }),
        }
    }
}

/// Every column but the source tree, for lists (a page of 100 trees is not worth reading).
const SUMMARY_COLUMNS: &str = "id, user_id, project_id, project_label, kind, prompt, framework,
    parent_version_id, status, generate, error, failed_step, node_version, pnpm_version,
    null::jsonb as source_manifest, source_manifest_key, output_manifest_key, metadata, attempts,
    lost, builder_id, retry_of, superseded_by,
    pinned, archived_at, needs_rebuild, queue_ms, generate_ms, install_ms, build_ms, upload_ms, total_ms, output_bytes,
    file_count, created_at, started_at, finished_at";

/// At most one row as a version.
fn optional(row: Option<PgRow>) -> Result<Option<Version>, DbError> {
    row.as_ref().map(Version::from_row).transpose()
}

/// A version about to be queued.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub id: VersionId,
    pub user_id: UserId,
    pub project_id: ProjectId,
    pub project_label: String,
    pub prompt: Option<String>,
    pub framework: Option<String>,
    pub parent_version_id: Option<VersionId>,
    pub generate: bool,
    pub source_manifest: Manifest,
    pub metadata: Option<serde_json::Value>,
    /// The failed or cancelled build this one retries.
    pub retry_of: Option<VersionId>,
    /// Insert the row only if the project has no deployed version: admission took this for a
    /// first build from a hint (the KV has no latest pointer) without asking Postgres.
    pub only_if_first: bool,
}

/// Inserts queued rows with their `build_queued` events, all in one statement (see
/// [`super::batch`]). Returns, per row, whether it was inserted (false only for an
/// `only_if_first` row whose project has a deployed version).
pub async fn insert_queued(pool: &PgPool, rows: &[NewVersion]) -> Result<Vec<bool>, DbError> {
    let col = |f: fn(&NewVersion) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    // The row, its first event (`build_queued`, id 1) and that event's webhook deliveries, in
    // one statement.
    let inserted: Vec<String> = sqlx::query_scalar(
        "with queued as (
             insert into versions (id, user_id, project_id, project_label, prompt, framework,
                 parent_version_id, status, generate, source_manifest, metadata, retry_of,
                 last_event_id)
             select id, u, p, label, prompt, framework, parent, 'queued', generate, sources, metadata,
                    retry, 1
             from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::bool[], $9::jsonb[], $10::jsonb[], $11::text[], $12::bool[])
                  as t(id, u, p, label, prompt, framework, parent, generate, sources, metadata, retry,
                       first)
             where not (first and exists (
                 select 1 from versions d
                 where d.user_id = t.u and d.project_id = t.p and d.status = 'deployed'))
             returning id, user_id, project_id, parent_version_id, created_at),
         event as (
             insert into build_events (build_id, id, type, progress, data, created_at)
             select id, 1, 'build_queued', 0,
                    jsonb_strip_nulls(jsonb_build_object('parentVersionId', parent_version_id)), created_at
             from queued
             returning build_id, id, type, data, created_at),
         deliveries as (
             insert into webhook_deliveries (webhook_id, build_id, event_id, event_type, payload)
             select w.id, e.build_id, e.id, e.type,
                    kiln_webhook_payload(e.build_id, e.id, e.type, e.data, e.created_at, q.user_id,
                                         q.project_id)
             from event e join queued q on q.id = e.build_id
             join webhooks w on (w.event_types = '{}' or 'build_queued' = any (w.event_types))
                            and (w.user_id is null or w.user_id = q.user_id))
         select id from queued",
    )
    .bind(col(|v| Some(v.id.to_string())))
    .bind(col(|v| Some(v.user_id.to_string())))
    .bind(col(|v| Some(v.project_id.to_string())))
    .bind(col(|v| Some(v.project_label.clone())))
    .bind(col(|v| v.prompt.clone()))
    .bind(col(|v| v.framework.clone()))
    .bind(col(|v| v.parent_version_id.map(|p| p.to_string())))
    .bind(rows.iter().map(|v| v.generate).collect::<Vec<_>>())
    .bind(rows.iter().map(|v| Json(&v.source_manifest)).collect::<Vec<_>>())
    .bind(rows.iter().map(|v| v.metadata.clone()).collect::<Vec<_>>())
    .bind(col(|v| v.retry_of.map(|r| r.to_string())))
    .bind(rows.iter().map(|v| v.only_if_first).collect::<Vec<_>>())
    .fetch_all(pool)
    .await?;
    let inserted: std::collections::HashSet<String> = inserted.into_iter().collect();
    Ok(rows
        .iter()
        .map(|r| inserted.contains(&r.id.to_string()))
        .collect())
}

/// Removes a queued row that lost the race for its project's slot (nobody else has seen it).
pub async fn delete_unclaimed(pool: &PgPool, id: VersionId) -> Result<(), DbError> {
    sqlx::query("delete from versions where id = $1 and status = 'queued'")
        .bind(id.to_string())
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn get(pool: &PgPool, id: VersionId) -> Result<Option<Version>, DbError> {
    sqlx::query("select * from versions where id = $1")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await
        .map_err(DbError::from)
        .and_then(optional)
}

/// The newest deployed version of a project.
pub async fn latest_deployed(
    pool: &PgPool,
    user: &UserId,
    project: &ProjectId,
) -> Result<Option<Version>, DbError> {
    sqlx::query(
        "select * from versions where user_id = $1 and project_id = $2 and status = 'deployed'
         order by finished_at desc, id desc limit 1",
    )
    .bind(user.as_str())
    .bind(project.as_str())
    .fetch_optional(pool)
    .await
    .map_err(DbError::from)
    .and_then(optional)
}

/// Each project's latest deployed version, projects in order after `after` (user, project),
/// at most `limit`: a page of the maintenance job's walk over every project.
pub async fn latest_deployed_page(
    pool: &PgPool,
    after: Option<(&UserId, &ProjectId)>,
    limit: i64,
) -> Result<Vec<Version>, DbError> {
    let (user, project) = after.map_or((String::new(), String::new()), |(u, p)| {
        (u.as_str().to_owned(), p.as_str().to_owned())
    });
    sqlx::query(
        "select distinct on (user_id, project_id) * from versions
         where status = 'deployed' and (user_id, project_id) > ($1, $2)
         order by user_id, project_id, finished_at desc, id desc
         limit $3",
    )
    .bind(user)
    .bind(project)
    .bind(limit)
    .fetch_all(pool)
    .await?
    .iter()
    .map(Version::from_row)
    .collect()
}

/// [`latest_deployed`] of each project, in the order asked, in one statement.
pub async fn latest_deployed_each(
    pool: &PgPool,
    projects: &[(UserId, ProjectId)],
) -> Result<Vec<Option<Version>>, DbError> {
    let users: Vec<&str> = projects.iter().map(|(u, _)| u.as_str()).collect();
    let names: Vec<&str> = projects.iter().map(|(_, p)| p.as_str()).collect();
    let rows = sqlx::query(
        "select k.n as asked, v.* from unnest($1::text[], $2::text[]) with ordinality as k(u, p, n)
         cross join lateral (
             select * from versions where user_id = k.u and project_id = k.p and status = 'deployed'
             order by finished_at desc, id desc limit 1) v",
    )
    .bind(users)
    .bind(names)
    .fetch_all(pool)
    .await?;
    let mut found = vec![None; projects.len()];
    for row in rows {
        let asked: i64 = row.try_get("asked")?;
        let slot = usize::try_from(asked - 1)
            .ok()
            .and_then(|i| found.get_mut(i))
            .ok_or_else(|| corrupt("latest_deployed", format!("answer for input {asked}")))?;
        *slot = Some(Version::from_row(&row)?);
    }
    Ok(found)
}

/// Filters of the build list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub user_id: Option<UserId>,
    pub project_id: Option<ProjectId>,
    pub status: Option<BuildStatus>,
    /// Only versions older than this one (the cursor).
    pub before: Option<VersionId>,
    pub limit: i64,
}

/// Versions newest first.
pub async fn list(pool: &PgPool, f: &ListFilter) -> Result<Vec<Version>, DbError> {
    sqlx::query(&format!(
        "select {SUMMARY_COLUMNS} from versions
         where ($1::text is null or user_id = $1)
           and ($2::text is null or project_id = $2)
           and ($3::text is null or status = $3)
           and ($4::text is null or id < $4)
         order by id desc limit $5"
    ))
    .bind(f.user_id.as_ref().map(UserId::as_str))
    .bind(f.project_id.as_ref().map(ProjectId::as_str))
    .bind(f.status.map(BuildStatus::as_str))
    .bind(f.before.map(|b| b.to_string()))
    .bind(f.limit)
    .fetch_all(pool)
    .await?
    .iter()
    .map(Version::from_row)
    .collect()
}

/// The user and project a preview label names, when the project has any version.
pub async fn project_by_label(pool: &PgPool, label: &str) -> Result<Option<(UserId, ProjectId)>, DbError> {
    let row =
        sqlx::query("select user_id, project_id from versions where project_label = $1 order by id limit 1")
            .bind(label)
            .fetch_optional(pool)
            .await?;
    row.map(|r| {
        let user: String = r.try_get("user_id")?;
        let project: String = r.try_get("project_id")?;
        Ok((
            UserId::parse(&user).map_err(|e| corrupt(label, e))?,
            ProjectId::parse(&project).map_err(|e| corrupt(label, e))?,
        ))
    })
    .transpose()
}

/// Moves a queued build to running on `builder`; `None` when it was not queued (already taken,
/// cancelled or finished). The row's new `attempts` fences every later write of this attempt.
pub async fn start(pool: &PgPool, id: VersionId, builder: &str) -> Result<Option<Version>, DbError> {
    sqlx::query(
        "update versions set status = 'running', started_at = now(), attempts = attempts + 1,
             builder_id = $2, queue_ms = (extract(epoch from now() - created_at) * 1000)::bigint
         where id = $1 and status = 'queued' returning *",
    )
    .bind(id.to_string())
    .bind(builder)
    .fetch_optional(pool)
    .await
    .map_err(DbError::from)
    .and_then(optional)
}

/// What [`take_over`] found.
#[derive(Debug, Clone)]
pub enum TakeOver {
    /// The build runs again on the new builder, as a new attempt.
    Running(Version),
    /// Its builders were lost `max_attempts` times: the caller records it failed.
    Exhausted(Version),
    /// It already ended (its builder died after recording the outcome, or it was cancelled).
    Finished(Version),
    Missing,
}

/// A build whose builder was lost (its stream entry sat unrenewed for a lease): runs it again
/// on `builder` as a new attempt, unless its builders were lost `max_attempts` times.
pub async fn take_over(
    pool: &PgPool,
    id: VersionId,
    builder: &str,
    max_attempts: i32,
) -> Result<TakeOver, DbError> {
    let taken = sqlx::query(
        "update versions set status = 'running', started_at = now(), attempts = attempts + 1,
             lost = lost + 1, builder_id = $2,
             queue_ms = coalesce(queue_ms, (extract(epoch from now() - created_at) * 1000)::bigint)
         where id = $1 and status in ('queued', 'running') and lost + 1 < $3 returning *",
    )
    .bind(id.to_string())
    .bind(builder)
    .bind(max_attempts)
    .fetch_optional(pool)
    .await
    .map_err(DbError::from)
    .and_then(optional)?;
    if let Some(v) = taken {
        return Ok(TakeOver::Running(v));
    }
    let Some(v) = get(pool, id).await? else {
        return Ok(TakeOver::Missing);
    };
    Ok(if v.status.is_final() {
        TakeOver::Finished(v)
    } else {
        TakeOver::Exhausted(v)
    })
}

/// Records a build whose builders were lost `max_attempts` times as failed at `step`.
/// `None` when something else ended it first.
pub async fn fail_lost(pool: &PgPool, id: VersionId, step: Step) -> Result<Option<Version>, DbError> {
    sqlx::query(
        "update versions set status = 'failed', finished_at = now(), failed_step = $2,
             lost = lost + 1, error = 'builder lost ' || (lost + 1) || ' times',
             total_ms = (extract(epoch from now() - created_at) * 1000)::bigint
         where id = $1 and status in ('queued', 'running') returning *",
    )
    .bind(id.to_string())
    .bind(step.as_str())
    .fetch_optional(pool)
    .await
    .map_err(DbError::from)
    .and_then(optional)
}

/// Gives a running attempt back to the queue (its daemon is draining): the build is queued
/// again, not failed. `false` when the attempt is no longer the build's current one.
pub async fn hand_back(pool: &PgPool, id: VersionId, attempt: i32) -> Result<bool, DbError> {
    let done = sqlx::query(
        "update versions set status = 'queued', started_at = null
         where id = $1 and status = 'running' and attempts = $2",
    )
    .bind(id.to_string())
    .bind(attempt)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A build's status and current attempt, for a running attempt to check that it still is the
/// build's current one.
pub async fn attempt_of(pool: &PgPool, id: VersionId) -> Result<Option<(BuildStatus, i32)>, DbError> {
    let row = sqlx::query("select status, attempts from versions where id = $1")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.map(|r| {
        let status: String = r.try_get("status")?;
        Ok((
            status.parse().map_err(|e| corrupt(&id.to_string(), e))?,
            r.try_get("attempts")?,
        ))
    })
    .transpose()
}

/// Queued builds created more than `min_age` ago, oldest first, at most `limit`.
pub async fn queued_before(
    pool: &PgPool,
    min_age: std::time::Duration,
    limit: i64,
) -> Result<Vec<Version>, DbError> {
    older_than(pool, "status = 'queued' and created_at", min_age, limit).await
}

/// Running builds whose current attempt started more than `min_age` ago, oldest first, at
/// most `limit` (the candidates for "running with no live claim").
pub async fn running_before(
    pool: &PgPool,
    min_age: std::time::Duration,
    limit: i64,
) -> Result<Vec<Version>, DbError> {
    older_than(pool, "status = 'running' and started_at", min_age, limit).await
}

/// Rows where `status_and_time` (a condition ending in a time column, fixed by the callers)
/// is more than `min_age` ago.
async fn older_than(
    pool: &PgPool,
    status_and_time: &'static str,
    min_age: std::time::Duration,
    limit: i64,
) -> Result<Vec<Version>, DbError> {
    sqlx::query(&format!(
        "select {SUMMARY_COLUMNS} from versions
         where {status_and_time} < now() - make_interval(secs => $1)
         order by id limit $2"
    ))
    .bind(min_age.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await?
    .iter()
    .map(Version::from_row)
    .collect()
}

/// Marks a still-queued build superseded by the newer build `by` (whose row exists); `None`
/// when it is no longer queued.
pub async fn supersede(pool: &PgPool, id: VersionId, by: VersionId) -> Result<Option<Version>, DbError> {
    sqlx::query(
        "update versions set status = 'superseded', superseded_by = $2, finished_at = now(),
             total_ms = (extract(epoch from now() - created_at) * 1000)::bigint
         where id = $1 and status = 'queued' returning *",
    )
    .bind(id.to_string())
    .bind(by.to_string())
    .fetch_optional(pool)
    .await
    .map_err(DbError::from)
    .and_then(optional)
}

/// Cancels a queued or running build. `Ok(Ok(v))`: cancelled now; `Ok(Err(v))`: it had already
/// ended (`v` as it is); `None`: no such build.
pub async fn cancel(pool: &PgPool, id: VersionId) -> Result<Option<Result<Version, Version>>, DbError> {
    let cancelled = sqlx::query(
        "update versions set status = 'cancelled', finished_at = now(),
             total_ms = (extract(epoch from now() - created_at) * 1000)::bigint
         where id = $1 and status in ('queued', 'running') returning *",
    )
    .bind(id.to_string())
    .fetch_optional(pool)
    .await
    .map_err(DbError::from)
    .and_then(optional)?;
    if let Some(v) = cancelled {
        return Ok(Some(Ok(v)));
    }
    Ok(get(pool, id).await?.map(Err))
}

/// What a successful build records.
#[derive(Debug, Clone)]
pub struct Deployed<'a> {
    /// The source tree, when the build changed it (it adds the lockfile pnpm wrote).
    pub sources: Option<&'a Manifest>,
    pub output_manifest_key: &'a str,
    pub framework: Option<&'a str>,
    pub node_version: Option<&'a str>,
    pub pnpm_version: Option<&'a str>,
    pub metadata: Option<&'a serde_json::Value>,
    pub metrics: &'a Metrics,
}

/// Records a running build as deployed; `None` when it was no longer running.
pub async fn mark_deployed(
    pool: &PgPool,
    id: VersionId,
    attempt: i32,
    d: &Deployed<'_>,
) -> Result<Option<Version>, DbError> {
    let m = d.metrics;
    sqlx::query(
        "update versions set status = 'deployed', finished_at = now(),
             source_manifest = coalesce($2, source_manifest), output_manifest_key = $3,
             framework = coalesce(framework, $4), node_version = $5, pnpm_version = $6,
             metadata = coalesce($7, metadata),
             generate_ms = $8, install_ms = $9, build_ms = $10, upload_ms = $11,
             output_bytes = $12, file_count = $13,
             total_ms = (extract(epoch from now() - created_at) * 1000)::bigint
         where id = $1 and status = 'running' and attempts = $14 returning *",
    )
    .bind(id.to_string())
    .bind(d.sources.map(Json))
    .bind(d.output_manifest_key)
    .bind(d.framework)
    .bind(d.node_version)
    .bind(d.pnpm_version)
    .bind(d.metadata)
    .bind(m.generate_ms)
    .bind(m.install_ms)
    .bind(m.build_ms)
    .bind(m.upload_ms)
    .bind(m.output_bytes)
    .bind(m.file_count)
    .bind(attempt)
    .fetch_optional(pool)
    .await
    .map_err(DbError::from)
    .and_then(optional)
}

/// Records a queued or running build as failed, keeping the step and the reason, and whatever
/// timings it got to. `attempt` fences a builder's write (`None`: any attempt). `false` when
/// the build had already finished, or the attempt is not the current one.
pub async fn mark_failed(
    pool: &PgPool,
    id: VersionId,
    attempt: Option<i32>,
    step: Step,
    error: &str,
    metrics: &Metrics,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "update versions set status = 'failed', finished_at = now(), failed_step = $2, error = $3,
             generate_ms = $4, install_ms = $5, build_ms = $6, upload_ms = $7,
             total_ms = (extract(epoch from now() - created_at) * 1000)::bigint
         where id = $1 and status in ('queued', 'running') and ($8::int is null or attempts = $8)",
    )
    .bind(id.to_string())
    .bind(step.as_str())
    .bind(error)
    .bind(metrics.generate_ms)
    .bind(metrics.install_ms)
    .bind(metrics.build_ms)
    .bind(metrics.upload_ms)
    .bind(attempt)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a rollback: a new deployed version (kind `rollback`) whose parent is the target and
/// which shares the target's manifests. Nothing is built or uploaded.
pub async fn insert_rollback(pool: &PgPool, id: VersionId, target: &Version) -> Result<Version, DbError> {
    sqlx::query(
        "insert into versions (id, user_id, project_id, project_label, kind, prompt, framework,
             parent_version_id, status, source_manifest, source_manifest_key, output_manifest_key,
             metadata, node_version, pnpm_version, output_bytes, file_count, queue_ms, total_ms,
             started_at, finished_at)
         select $1, user_id, project_id, project_label, 'rollback', null, framework,
             id, 'deployed', source_manifest, source_manifest_key, output_manifest_key, metadata,
             node_version, pnpm_version, output_bytes, file_count, 0, 0, now(), now()
         from versions where id = $2 and status = 'deployed'
         returning *",
    )
    .bind(id.to_string())
    .bind(target.id.to_string())
    .fetch_optional(pool)
    .await
    .map_err(DbError::from)
    .and_then(optional)?
    .ok_or_else(|| {
        corrupt(
            &target.id.to_string(),
            "the rollback target is no longer deployed",
        )
    })
}

/// Removes a rollback row whose pointer flip failed (nobody has served it).
pub async fn delete_rollback(pool: &PgPool, id: VersionId) -> Result<(), DbError> {
    sqlx::query("delete from versions where id = $1 and kind = 'rollback'")
        .bind(id.to_string())
        .execute(pool)
        .await?;
    Ok(())
}

/// Pins or unpins a version; `None` when it does not exist.
pub async fn set_pinned(pool: &PgPool, id: VersionId, pinned: bool) -> Result<Option<Version>, DbError> {
    sqlx::query("update versions set pinned = $2 where id = $1 returning *")
        .bind(id.to_string())
        .bind(pinned)
        .fetch_optional(pool)
        .await
        .map_err(DbError::from)
        .and_then(optional)
}

/// Where a queued build stands: the builds queued before it, the builds running now, and the
/// median run time (start to finish) of the last [`RECENT_BUILDS`] finished builds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueStanding {
    pub ahead: i64,
    pub running: i64,
    pub median_build_secs: Option<f64>,
}

/// How many finished builds the run-time median looks at.
pub const RECENT_BUILDS: i64 = 50;

/// The stream is first in, first out, and ids grow with admission time, so the builds ahead of
/// `id` are the queued ones with smaller ids.
pub async fn queue_standing(pool: &PgPool, id: VersionId) -> Result<QueueStanding, DbError> {
    let row = sqlx::query(
        "select
             (select count(*) from versions where status = 'queued' and id < $1) as ahead,
             (select count(*) from versions where status = 'running') as running,
             (select percentile_cont(0.5) within group (order by secs) from (
                  select extract(epoch from finished_at - started_at)::float8 as secs
                  from versions
                  where kind = 'build' and status in ('deployed', 'failed')
                        and started_at is not null and finished_at is not null
                  order by id desc limit $2) recent) as median_build_secs",
    )
    .bind(id.to_string())
    .bind(RECENT_BUILDS)
    .fetch_one(pool)
    .await?;
    Ok(QueueStanding {
        ahead: row.try_get("ahead")?,
        running: row.try_get("running")?,
        median_build_secs: row.try_get("median_build_secs")?,
    })
}

/// The farm's builds in progress: how many are queued and running, and how long the oldest
/// queued one has waited (0 when none is). Reads the partial index of active builds only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActiveBuilds {
    pub queued: i64,
    pub running: i64,
    pub oldest_queued_secs: f64,
}

pub async fn active_builds(pool: &PgPool) -> Result<ActiveBuilds, DbError> {
    let row = sqlx::query(
        "select count(*) filter (where status = 'queued') as queued,
                count(*) filter (where status = 'running') as running,
                coalesce(extract(epoch from now() - min(created_at) filter (where status = 'queued')),
                         0)::float8 as oldest
         from versions where status in ('queued', 'running')",
    )
    .fetch_one(pool)
    .await?;
    Ok(ActiveBuilds {
        queued: row.try_get("queued")?,
        running: row.try_get("running")?,
        oldest_queued_secs: row.try_get::<f64, _>("oldest")?.max(0.0),
    })
}

/// The user a build (version) belongs to, for access checks; `None` when there is no such build.
pub async fn user_of(pool: &PgPool, id: VersionId) -> Result<Option<UserId>, DbError> {
    let row = sqlx::query("select user_id from versions where id = $1")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
    row.map(|r| {
        let user: String = r.try_get("user_id")?;
        UserId::parse(&user).map_err(|e| corrupt(&id.to_string(), e))
    })
    .transpose()
}
