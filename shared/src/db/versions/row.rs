//! The `versions` row: one version (= one build), its timings and sizes, and how a row is read.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;

use crate::db::DbError;
use crate::domain::{
    BuildSettings, BuildStatus, Checks, Diagnostic, EnvEntry, ProjectId, Step, UserId, VersionId,
};
use crate::store::{Artifacts, Manifest, StoreError};

/// A build's timings and sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub queue_ms: Option<i64>,
    pub generate_ms: Option<i64>,
    pub install_ms: Option<i64>,
    pub build_ms: Option<i64>,
    /// The checks' phase (typecheck, lint), when the build asked for any.
    pub check_ms: Option<i64>,
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
    /// The folder the output was published from (`.`: the tree as it came).
    pub output_dir: Option<String>,
    /// What a failed build's tools (or its checks, in `warn` mode) said, at most
    /// [`crate::domain::MAX_DIAGNOSTICS`]; `None` in lists (read the version by id).
    pub diagnostics: Option<Vec<Diagnostic>>,
    /// How many diagnostics there were in all (more than kept, when over the cap).
    pub diagnostics_total: Option<i32>,
    /// The checks the build runs before its build script.
    pub checks: Checks,
    /// The build settings it was built with (the project's, with the request's overrides).
    pub settings: BuildSettings,
    /// The environment it was built with (names, secret or not, keyed hashes of the values);
    /// `None` until its build read it.
    pub env: Option<Vec<EnvEntry>>,
    /// The request's one-off plain values (`None` in lists).
    pub request_env: Option<std::collections::BTreeMap<String, String>>,
    /// The version whose sources this redeploy built.
    pub redeploy_of: Option<VersionId>,
    /// The hex SHA-256 of everything that decides the build's output (sources, settings,
    /// environment, toolchain), when it qualifies for reuse.
    pub build_key: Option<String>,
    /// The deployed version whose output this one serves (an identical build was not run).
    pub reused_from: Option<VersionId>,
    /// The request asked for a build even when an identical deployed version exists.
    pub force: bool,
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
    /// When maintenance archived the output (it is still served).
    pub archived_at: Option<DateTime<Utc>>,
    /// Maintenance found a blob of this version gone for good: rebuild it to serve it whole.
    pub needs_rebuild: bool,
    pub metrics: Metrics,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub(super) fn corrupt(id: &str, reason: impl ToString) -> DbError {
    DbError::Corrupt {
        id: id.to_owned(),
        reason: reason.to_string(),
    }
}

impl Version {
    pub(super) fn from_row(row: &PgRow) -> Result<Self, DbError> {
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
            output_dir: row.try_get("output_dir")?,
            diagnostics: row
                .try_get::<Option<Json<Vec<Diagnostic>>>, _>("diagnostics")?
                .map(|d| d.0),
            diagnostics_total: row.try_get("diagnostics_total")?,
            checks: row
                .try_get::<Option<Json<Checks>>, _>("checks")?
                .map(|c| c.0)
                .unwrap_or_default(),
            settings: row
                .try_get::<Option<Json<BuildSettings>>, _>("settings")?
                .map(|c| c.0)
                .unwrap_or_default(),
            env: row.try_get::<Option<Json<Vec<EnvEntry>>>, _>("env")?.map(|e| e.0),
            request_env: row
                .try_get::<Option<Json<std::collections::BTreeMap<String, String>>>, _>("request_env")?
                .map(|e| e.0),
            redeploy_of: id_field("redeploy_of")?,
            build_key: row.try_get("build_key")?,
            reused_from: id_field("reused_from")?,
            force: row.try_get("force")?,
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
                check_ms: row.try_get("check_ms")?,
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
pub(super) const SUMMARY_COLUMNS: &str = "id, user_id, project_id, project_label, kind, prompt, framework,
    parent_version_id, status, generate, error, failed_step, node_version, pnpm_version,
    output_dir, null::jsonb as diagnostics, diagnostics_total, check_ms, checks, settings, env,
    null::jsonb as request_env, redeploy_of, build_key, reused_from, force, null::jsonb as source_manifest, source_manifest_key, output_manifest_key, metadata, attempts,
    lost, builder_id, retry_of, superseded_by,
    pinned, archived_at, needs_rebuild, queue_ms, generate_ms, install_ms, build_ms, upload_ms, total_ms, output_bytes,
    file_count, created_at, started_at, finished_at";

/// At most one row as a version.
pub(super) fn optional(row: Option<PgRow>) -> Result<Option<Version>, DbError> {
    row.as_ref().map(Version::from_row).transpose()
}
