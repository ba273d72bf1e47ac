//! Reads of versions: one by id, the latest deployed ones, lists and pages, and the figures of
//! the queue (a queued build's standing, the farm's active builds).

use sqlx::{PgExecutor, PgPool, Row};

use super::row::{corrupt, optional, SUMMARY_COLUMNS};
use super::Version;
use crate::db::DbError;
use crate::domain::{BuildStatus, EnvEntry, ProjectId, UserId, VersionId};

/// One version by id (with its source tree).
pub async fn get(db: impl PgExecutor<'_>, id: VersionId) -> Result<Option<Version>, DbError> {
    sqlx::query("select * from versions where id = $1")
        .bind(id.to_string())
        .fetch_optional(db)
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

/// The deployed version of a project with `build_key` (see [`Version::build_key`]) whose
/// output is whole (not awaiting a rebuild) that a build with that key reuses: the newest one
/// that was built, else (it was deleted) the newest that reused it. Without its source tree.
pub async fn deployed_with_key(
    pool: &PgPool,
    user: &UserId,
    project: &ProjectId,
    build_key: &str,
) -> Result<Option<Version>, DbError> {
    sqlx::query(&format!(
        "select {SUMMARY_COLUMNS} from versions
         where user_id = $1 and project_id = $2 and build_key = $3 and status = 'deployed'
           and not needs_rebuild and output_manifest_key is not null
         order by reused_from is not null, finished_at desc, id desc limit 1"
    ))
    .bind(user.as_str())
    .bind(project.as_str())
    .bind(build_key)
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

/// Queued builds created more than `min_age` ago, oldest first, at most `limit`.
pub async fn queued_before(
    pool: &PgPool,
    min_age: std::time::Duration,
    limit: i64,
) -> Result<Vec<Version>, DbError> {
    older_than(pool, "status = 'queued' and created_at", min_age, limit).await
}

/// The newest build of `v`'s project admitted after it that is queued, running or deployed (a
/// rollback too): a lost older build must not run after it and take the latest pointer back.
pub async fn newer_of_project(pool: &PgPool, v: &Version) -> Result<Option<VersionId>, DbError> {
    let id: Option<String> = sqlx::query_scalar(
        "select id from versions
         where user_id = $1 and project_id = $2 and created_at > $3 and id <> $4
           and status in ('queued', 'running', 'deployed')
         order by created_at desc limit 1",
    )
    .bind(v.user_id.as_str())
    .bind(v.project_id.as_str())
    .bind(v.created_at)
    .bind(v.id.to_string())
    .fetch_optional(pool)
    .await?;
    id.map(|id| VersionId::parse(&id).map_err(|e| super::row::corrupt(&id, e)))
        .transpose()
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

/// The environment a version was built with (its names, secret flags and keyed hashes), read
/// alone: `None` when the version does not exist, `Some(None)` when it recorded none.
pub async fn env_of(pool: &PgPool, id: VersionId) -> Result<Option<Option<Vec<EnvEntry>>>, DbError> {
    let env: Option<Option<sqlx::types::Json<Vec<EnvEntry>>>> =
        sqlx::query_scalar("select env from versions where id = $1")
            .bind(id.to_string())
            .fetch_optional(pool)
            .await?;
    Ok(env.map(|e| e.map(|e| e.0)))
}
