//! Rows written outside the attempt state machine: the queued rows admission inserts (and
//! removes when they lost the race for their project's slot), rollback rows, and the pin.

use sqlx::types::Json;
use sqlx::PgPool;

use super::row::{corrupt, optional};
use super::Version;
use crate::db::DbError;
use crate::domain::{BuildSettings, Checks, ProjectId, UserId, VersionId};
use crate::store::Manifest;

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
    /// The checks the build runs before its build script, when the request says (none: the
    /// project's default checks, else all off).
    pub checks: Option<Checks>,
    /// The request's overrides of the project's build settings (the row records both merged).
    pub settings: BuildSettings,
    /// The request's one-off plain environment values.
    pub request_env: Option<std::collections::BTreeMap<String, String>>,
    /// The version whose sources a redeploy builds.
    pub redeploy_of: Option<VersionId>,
    /// Build even when a deployed version of the project is identical (else that version's
    /// output is reused).
    pub force: bool,
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
                 checks, settings, request_env, redeploy_of, force, last_event_id)
             select id, u, p, label, prompt, framework, parent, 'queued', generate, sources, metadata,
                    retry, coalesce(t.checks, pr.settings -> 'checks'),
                    nullif(coalesce(pr.settings, '{}'::jsonb) || t.settings, '{}'::jsonb), request_env, redeploy,
                    force, 1
             from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::bool[], $9::jsonb[], $10::jsonb[], $11::text[], $12::bool[],
                         $13::jsonb[], $14::jsonb[], $15::jsonb[], $16::text[], $17::bool[])
                  as t(id, u, p, label, prompt, framework, parent, generate, sources, metadata, retry,
                       first, checks, settings, request_env, redeploy, force)
             -- the project's settings, with the request's overrides on top
             left join projects pr on pr.user_id = t.u and pr.project_id = t.p
             where not (first and exists (
                 select 1 from versions d
                 where d.user_id = t.u and d.project_id = t.p and d.status = 'deployed'))
             returning id, user_id, project_id, parent_version_id, created_at),
         project as (
             insert into projects (user_id, project_id, active_at)
             select distinct on (user_id, project_id) user_id, project_id, created_at from queued
             order by user_id, project_id, created_at desc
             on conflict (user_id, project_id) do update set active_at = greatest(projects.active_at, excluded.active_at)),
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
    .bind(rows.iter().map(|v| v.checks.map(Json)).collect::<Vec<_>>())
    .bind(rows.iter().map(|v| Json(&v.settings)).collect::<Vec<_>>())
    .bind(rows.iter().map(|v| v.request_env.as_ref().map(Json)).collect::<Vec<_>>())
    .bind(col(|v| v.redeploy_of.map(|r| r.to_string())))
    .bind(rows.iter().map(|v| v.force).collect::<Vec<_>>())
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

/// Records a rollback: a new deployed version (kind `rollback`) whose parent is the target and
/// which shares the target's manifests. Nothing is built or uploaded.
pub async fn insert_rollback(pool: &PgPool, id: VersionId, target: &Version) -> Result<Version, DbError> {
    sqlx::query(
        "insert into versions (id, user_id, project_id, project_label, kind, prompt, framework,
             parent_version_id, status, source_manifest, source_manifest_key, output_manifest_key,
             metadata, node_version, pnpm_version, output_bytes, file_count, queue_ms, total_ms,
             started_at, finished_at, output_dir, settings, env, checks)
         select $1, user_id, project_id, project_label, 'rollback', null, framework,
             id, 'deployed', source_manifest, source_manifest_key, output_manifest_key, metadata,
             node_version, pnpm_version, output_bytes, file_count, 0, 0, now(), now(), output_dir,
             settings, env, checks
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
