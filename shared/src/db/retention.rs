//! Retention of versions: which rows the maintenance run deletes or archives.
//!
//! Every project keeps its newest `keep` versions. Of the others, none is kept. Of the kept
//! ones, those older than `archive_after` have their output archived and those older than
//! `delete_after` are deleted. Never touched, whatever their age or rank: a pinned version,
//! the project's current latest, the target of a rollback made within `rollback_protect`, and a
//! build still queued or running. A row's manifests, log and blobs go later, with the blob GC,
//! once nothing references them.

use std::time::Duration;

use sqlx::PgPool;

use super::DbError;
use crate::domain::VersionId;

/// The rules, as the maintenance settings give them.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub keep: u64,
    pub archive_after: Duration,
    pub delete_after: Duration,
    pub rollback_protect: Duration,
}

/// Rows that no rule protects, with a rank and an age: the candidates of both plans.
const UNPROTECTED: &str = "
    with latest as (
        select distinct on (user_id, project_id) id from versions
        where status = 'deployed'
        order by user_id, project_id, finished_at desc, id desc
    ), ranked as (
        select id, created_at, pinned, status, archived_at,
               row_number() over (partition by user_id, project_id order by id desc) as rank
        from versions
    )
    select r.id, r.rank, r.created_at, r.status, r.archived_at from ranked r
    where not r.pinned
      and r.status not in ('queued', 'running')
      and r.id not in (select id from latest)
      and not exists (
          select 1 from versions b
          where b.parent_version_id = r.id and b.kind = 'rollback'
            and b.created_at > now() - make_interval(secs => $1))";

/// The rows to delete and the rows to archive, as of now.
pub async fn plan(pool: &PgPool, rules: &Rules) -> Result<(Vec<VersionId>, Vec<VersionId>), DbError> {
    let sql = format!(
        "with c as ({UNPROTECTED})
         select id, (rank > $2 or created_at < now() - make_interval(secs => $3)) as delete
         from c
         where rank > $2
            or created_at < now() - make_interval(secs => $3)
            or (created_at < now() - make_interval(secs => $4)
                and status = 'deployed' and archived_at is null)
         order by id"
    );
    let rows: Vec<(String, bool)> = sqlx::query_as(&sql)
        .bind(rules.rollback_protect.as_secs_f64())
        .bind(rules.keep as i64)
        .bind(rules.delete_after.as_secs_f64())
        .bind(rules.archive_after.as_secs_f64())
        .fetch_all(pool)
        .await?;
    let (mut delete, mut archive) = (Vec::new(), Vec::new());
    for (id, del) in rows {
        let id = VersionId::parse(&id).map_err(|e| DbError::Corrupt {
            id: id.clone(),
            reason: format!("version id: {e}"),
        })?;
        if del {
            delete.push(id);
        } else {
            archive.push(id);
        }
    }
    Ok((delete, archive))
}

/// Deletes these rows (their events go with them), each one only if it is still unprotected:
/// pinned, made the target of a rollback or made the latest since the plan, it stays. Returns
/// how many went.
pub async fn delete(pool: &PgPool, ids: &[VersionId], rules: &Rules) -> Result<u64, DbError> {
    let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    let done = sqlx::query(
        "delete from versions v
         where v.id = any($1) and not v.pinned and v.status not in ('queued', 'running')
           and not exists (
               select 1 from versions b
               where b.parent_version_id = v.id and b.kind = 'rollback'
                 and b.created_at > now() - make_interval(secs => $2))
           and v.id is distinct from (
               select l.id from versions l
               where l.user_id = v.user_id and l.project_id = v.project_id and l.status = 'deployed'
               order by l.finished_at desc, l.id desc limit 1)",
    )
    .bind(&ids)
    .bind(rules.rollback_protect.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Marks these rows archived (unless pinned meanwhile). Returns how many were.
pub async fn archive(pool: &PgPool, ids: &[VersionId]) -> Result<u64, DbError> {
    let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    let done = sqlx::query(
        "update versions set archived_at = now()
         where id = any($1) and archived_at is null and not pinned",
    )
    .bind(&ids)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Build events and webhook deliveries (with their attempts) created before `before`, deleted
/// `batch` rows at a time. Returns (events, deliveries) deleted; `dry_run` only counts.
pub async fn expire_events(
    pool: &PgPool,
    before: chrono::DateTime<chrono::Utc>,
    batch: i64,
    dry_run: bool,
) -> Result<(u64, u64), DbError> {
    if dry_run {
        let (events, deliveries): (i64, i64) = sqlx::query_as(
            "select (select count(*) from build_events where created_at < $1),
                    (select count(*) from webhook_deliveries where created_at < $1 and status <> 'pending')",
        )
        .bind(before)
        .fetch_one(pool)
        .await?;
        return Ok((events as u64, deliveries as u64));
    }
    let events = delete_in_batches(
        pool,
        "delete from build_events where ctid = any(array(
             select ctid from build_events where created_at < $1 limit $2))",
        before,
        batch,
    )
    .await?;
    let deliveries = delete_in_batches(
        pool,
        "delete from webhook_deliveries where id in (
             select id from webhook_deliveries
             where created_at < $1 and status <> 'pending' limit $2)",
        before,
        batch,
    )
    .await?;
    Ok((events, deliveries))
}

/// Runs `sql` (a delete of at most `$2` rows older than `$1`) until it deletes fewer than
/// `batch`: short statements, so deletes never hold many locks at once.
async fn delete_in_batches(
    pool: &PgPool,
    sql: &str,
    before: chrono::DateTime<chrono::Utc>,
    batch: i64,
) -> Result<u64, DbError> {
    let mut total = 0;
    loop {
        let n = sqlx::query(sql)
            .bind(before)
            .bind(batch)
            .execute(pool)
            .await?
            .rows_affected();
        total += n;
        if n < batch as u64 {
            return Ok(total);
        }
    }
}

/// What a version references in the artifact store: the blob GC's marks.
#[derive(Debug, Clone)]
pub struct VersionRefs {
    pub id: VersionId,
    pub archived: bool,
    /// The source manifest kept in the row (then no object holds it).
    pub source_manifest: Option<crate::store::Manifest>,
    pub source_manifest_key: Option<String>,
    pub output_manifest_key: Option<String>,
}

/// Every version's references, in id order after `after`, at most `limit`.
pub async fn refs_page(
    pool: &PgPool,
    after: Option<VersionId>,
    limit: i64,
) -> Result<Vec<VersionRefs>, DbError> {
    type Row = (
        String,
        bool,
        Option<sqlx::types::Json<crate::store::Manifest>>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "select id, archived_at is not null, source_manifest, source_manifest_key, output_manifest_key
         from versions where id > $1 order by id limit $2",
    )
    .bind(after.map(|a| a.to_string()).unwrap_or_default())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(id, archived, source, source_key, output_key)| {
            Ok(VersionRefs {
                id: VersionId::parse(&id).map_err(|e| DbError::Corrupt {
                    id: id.clone(),
                    reason: e.to_string(),
                })?,
                archived,
                source_manifest: source.map(|j| j.0),
                source_manifest_key: source_key,
                output_manifest_key: output_key,
            })
        })
        .collect()
}

/// Marks these versions as needing a rebuild (a blob of theirs is gone for good).
pub async fn mark_needs_rebuild(pool: &PgPool, ids: &[VersionId]) -> Result<u64, DbError> {
    let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    let done =
        sqlx::query("update versions set needs_rebuild = true where id = any($1) and not needs_rebuild")
            .bind(&ids)
            .execute(pool)
            .await?;
    Ok(done.rows_affected())
}
