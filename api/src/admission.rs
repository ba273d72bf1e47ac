//! Admission of a build request: validate it into typed values, store its sources, record the
//! version and queue it, with at most one queued-or-running build per project.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use kiln_shared::db::batch::Batcher;
use kiln_shared::db::events;
use kiln_shared::db::versions::{self, Metrics, NewVersion, Version};
use kiln_shared::db::PgPool;
use kiln_shared::domain::{
    file_and_folder, BuildStatus, EventType, FileInput, GeneratorOutput, ProjectId, RelativePath, SourceFile,
    Step, UserId, VersionId,
};
use kiln_shared::preview::project_label;
use kiln_shared::redis::{Admission, Preflight, SignatureRecord};
use kiln_shared::store::{Manifest, StoredBlob};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;

/// The longest prompt kept, in bytes.
const MAX_PROMPT_BYTES: usize = 100_000;

/// The wire body of `POST /v1/builds` (and of the seed aliases, which use a subset). A field
/// Kiln does not know is refused (a misspelt `baseVersionId` must not quietly build on the
/// latest version), and is never parsed deeper than its name.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildRequestBody {
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub prompt: Option<String>,
    pub framework: Option<String>,
    pub base_version_id: Option<String>,
    pub files: Option<Vec<FileInput>>,
    pub deleted: Option<Vec<String>>,
    pub output: Option<GeneratorOutput>,
    pub on_conflict: Option<String>,
}

/// What admission does when another build of the project is queued or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// 409 naming the other build (the default).
    #[default]
    Reject,
    /// A still-queued build is replaced: it becomes `superseded`, pointing at the new one
    /// ("latest wins"); a running one is still a 409.
    Supersede,
    /// Like `Supersede`, and a running build is cancelled and replaced too.
    CancelRunning,
}

impl OnConflict {
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        match raw {
            None | Some("reject") => Ok(Self::Reject),
            Some("supersede") => Ok(Self::Supersede),
            Some("cancel-running") => Ok(Self::CancelRunning),
            Some(other) => Err(unprocessable(format!(
                "onConflict must be reject, supersede or cancel-running, not {other:?}"
            ))),
        }
    }
}

/// A build request, parsed.
#[derive(Debug)]
pub struct BuildRequest {
    pub user: UserId,
    pub project: ProjectId,
    pub prompt: Option<String>,
    pub framework: Option<String>,
    pub base: Option<VersionId>,
    /// `None` when the request carries no files at all.
    pub files: Option<Vec<SourceFile>>,
    pub deleted: Vec<RelativePath>,
    pub metadata: Option<serde_json::Value>,
    pub on_conflict: OnConflict,
}

/// What a client is told when its build is queued.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Queued {
    pub build_id: VersionId,
    pub status: BuildStatus,
    pub user_id: UserId,
    pub project_id: ProjectId,
    pub status_url: String,
    pub preview_url: String,
    pub latest_url: String,
    /// The build of the project this one replaced (`onConflict`), if it replaced one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<Replaced>,
}

/// A build replaced by a newer request of its project.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replaced {
    pub build_id: VersionId,
    /// `superseded` (it was queued) or `cancelled` (it was running).
    pub status: BuildStatus,
}

fn unprocessable(e: impl ToString) -> ApiError {
    ApiError::Unprocessable(e.to_string())
}

impl BuildRequest {
    pub fn parse(body: BuildRequestBody, limits: kiln_shared::domain::FileLimits) -> Result<Self, ApiError> {
        let user = UserId::parse(body.user_id.as_deref().unwrap_or_default()).map_err(unprocessable)?;
        let project =
            ProjectId::parse(body.project_id.as_deref().unwrap_or_default()).map_err(unprocessable)?;
        let prompt = body.prompt.filter(|p| !p.trim().is_empty());
        if prompt.as_ref().is_some_and(|p| p.len() > MAX_PROMPT_BYTES) {
            return Err(unprocessable(format!(
                "prompt is longer than {MAX_PROMPT_BYTES} bytes"
            )));
        }
        let framework = body.framework.filter(|f| !f.is_empty());
        if let Some(f) = &framework {
            if f.len() > 32
                || !f
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(unprocessable(
                    "framework must be up to 32 characters of a-z, 0-9, '-' or '.'",
                ));
            }
        }
        let on_conflict = OnConflict::parse(body.on_conflict.as_deref())?;
        let base = body
            .base_version_id
            .filter(|b| !b.is_empty())
            .map(|b| VersionId::parse_field("baseVersionId", &b))
            .transpose()
            .map_err(unprocessable)?;
        let metadata = body.output.as_ref().map(GeneratorOutput::metadata_json);
        let mut inputs: Vec<FileInput> = body.output.map(|o| o.merged_files()).unwrap_or_default();
        let had_files = body.files.is_some() || !inputs.is_empty();
        if let Some(files) = body.files {
            // `files` replace same-path entries of `output`.
            let given: std::collections::HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
            inputs.retain(|f| !given.contains(f.path.as_str()));
            inputs.extend(files);
        }
        let files = SourceFile::parse_all(&inputs, limits).map_err(unprocessable)?;
        let deleted = body
            .deleted
            .unwrap_or_default()
            .iter()
            .map(|d| RelativePath::parse(d).map_err(|e| unprocessable(format!("deleted: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            user,
            project,
            prompt,
            framework,
            base,
            files: had_files.then_some(files),
            deleted,
            metadata,
            on_conflict,
        })
    }
}

/// The largest batch of one admission statement, and how many of each run at once. One: the
/// next batch gathers while the current one runs, so batches grow with the load, and Postgres
/// runs one statement of many rows instead of many small ones (its cost is mostly per
/// statement; measured with `ops/bench/run.sh admission`: 1 beat 2 and 4).
const MAX_BATCH: usize = 64;
const PARALLEL_BATCHES: usize = 1;

/// Admission's two Postgres statements, each batched across concurrent requests
/// ([`kiln_shared::db::batch`]): the projects' base versions (rebuilds only: a first build
/// skips it, see [`admit`]), then the new rows.
#[derive(Debug, Clone)]
pub struct AdmissionDb {
    bases: Batcher<(UserId, ProjectId), Option<Version>>,
    rows: Batcher<NewVersion, bool>,
}

impl AdmissionDb {
    /// The size of the pool to give [`AdmissionDb::new`]: a connection per batch in flight.
    pub const CONNECTIONS: u32 = 2 * PARALLEL_BATCHES as u32;

    /// The batchers; `pool` is theirs alone (a connection per batch in flight, generic plans:
    /// see [`kiln_shared::db::connect_generic`]).
    pub fn new(pool: &PgPool) -> Self {
        let p = pool.clone();
        let bases = Batcher::new(
            "latest_deployed",
            MAX_BATCH,
            PARALLEL_BATCHES,
            move |keys: Vec<_>| {
                let p = p.clone();
                async move { versions::latest_deployed_each(&p, &keys).await }
            },
        );
        let p = pool.clone();
        let rows = Batcher::new(
            "insert_queued",
            MAX_BATCH,
            PARALLEL_BATCHES,
            move |rows: Vec<_>| {
                let p = p.clone();
                async move { versions::insert_queued(&p, &rows).await }
            },
        );
        Self { bases, rows }
    }
}

/// Admits a parsed request: the whole path of DESIGN.md's step 2.
#[tracing::instrument(skip_all, fields(user_id = %req.user, project_id = %req.project, build_id))]
pub async fn admit(
    state: &AppState,
    req: BuildRequest,
    signature: Option<SignatureRecord>,
) -> Result<Queued, ApiError> {
    let id = VersionId::new();
    tracing::Span::current().record("build_id", tracing::field::display(id));

    // One Redis round trip: the project's slot, whether the KV has its latest pointer, and
    // whether its quota is used up. A Redis error here is not fatal: the atomic admission below
    // decides (slot and quota), and records the build as failed if Redis is really down.
    let label = project_label(&req.user, &req.project);
    let preflight = match state
        .queue
        .preflight(&req.user, &req.project, &label, &state.quotas, signature.as_ref())
        .await
    {
        Ok(found) => found,
        // A signature that cannot be recorded is not accepted.
        Err(e) if signature.is_some() => return Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the project's slot, latest pointer and quota");
            Preflight {
                holder: None,
                has_latest: true,
                over_quota: None,
                signature: None,
            }
        }
    };
    if let Some(found) = preflight.signature {
        crate::auth::refuse_replays(found)?;
    }
    let has_latest = preflight.has_latest;
    // Fast path for the common conflict: no upload, no row. A request that repeats the build in
    // flight is a 409, not a quota refusal, and costs no quota.
    if let Some(holder) = preflight.holder {
        let may_replace = req.on_conflict != OnConflict::Reject && !holder.starts_with("rollback:");
        if !may_replace && holder_is_live(state, &holder).await? {
            return Err(conflict(holder));
        }
    }
    // A used-up quota is refused before anything is stored (the admission script checks again,
    // atomically, for the requests that race here).
    if let Some(hit) = preflight.over_quota {
        return Err(ApiError::over_quota(hit));
    }

    // A request that is a whole first build, of a project the KV has no latest pointer for, is
    // taken for a first build without asking Postgres for a base: its insert checks that the
    // project has no deployed version (`only_if_first`). If it has one after all (the KV lost
    // its pointer), admission starts over with the base from Postgres.
    let mut assume_first = !has_latest
        && req.base.is_none()
        && req.deleted.is_empty()
        && req.files.as_ref().is_some_and(|f| !f.is_empty());
    loop {
        let base = match assume_first {
            true => None,
            false => resolve_base(state, &req).await?,
        };
        if let Some(queued) = enqueue(
            state,
            new_version(state, id, &req, base, assume_first).await?,
            req.on_conflict,
        )
        .await?
        {
            return Ok(queued);
        }
        tracing::info!("the KV has no latest pointer for a project with a deployed version");
        assume_first = false;
    }
}

/// The row of an admitted request on top of `base`, its sources stored.
async fn new_version(
    state: &AppState,
    id: VersionId,
    req: &BuildRequest,
    base: Option<Version>,
    only_if_first: bool,
) -> Result<NewVersion, ApiError> {
    // Only a prompt: the generator writes the files in the builder.
    let generate = req.files.is_none() && req.deleted.is_empty() && req.prompt.is_some();
    if base.is_none() && req.files.as_ref().is_none_or(|f| f.is_empty()) && !generate {
        return Err(unprocessable(
            "a first build needs the project's files (files or output), or a prompt for the generator",
        ));
    }
    if generate && state.settings.generator_cmd.is_none() {
        return Err(unprocessable(
            "this request has only a prompt, and this farm has no generator configured (KILN_GENERATOR_CMD); send files",
        ));
    }
    if base.is_none() && !req.deleted.is_empty() {
        return Err(unprocessable(
            "deleted needs a base version, and this project has none",
        ));
    }
    let source_manifest = source_manifest(state, base.as_ref(), req).await?;
    Ok(NewVersion {
        id,
        user_id: req.user.clone(),
        project_id: req.project.clone(),
        project_label: project_label(&req.user, &req.project),
        prompt: req.prompt.clone(),
        framework: req.framework.clone(),
        parent_version_id: base.as_ref().map(|b| b.id),
        generate,
        source_manifest,
        metadata: req.metadata.clone(),
        retry_of: None,
        only_if_first,
    })
}

/// Records a new queued version and queues it: its row first, then the project's slot and the
/// stream entry in one atomic step. A stale claim (its build is over) is released; a live one
/// is replaced as `on_conflict` allows, else it is a 409 and the row goes again. `None` when
/// the row was not inserted (`only_if_first`, and the project has a deployed version).
pub(crate) async fn enqueue(
    state: &AppState,
    row: NewVersion,
    on_conflict: OnConflict,
) -> Result<Option<Queued>, ApiError> {
    let (id, user, project, label) = (
        row.id,
        row.user_id.clone(),
        row.project_id.clone(),
        row.project_label.clone(),
    );
    let inserted = match state.admission.rows.call(row).await {
        Ok(inserted) => inserted,
        Err(e) if e.is_unavailable() => {
            forget_if_committed(state, id);
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    if !inserted {
        return Ok(None);
    }

    // Claim the slot and queue, atomically, counting the build against its quota. A stale or
    // replaced claim is released, and the claim tried again (a few times: other requests may be
    // racing for the slot). A request that may replace the holder takes its quota unit before it
    // replaces anything (so a used-up quota never leaves the project with its queued build
    // superseded and nothing in its place), and gives it back if it does not get queued.
    let replacing = on_conflict != OnConflict::Reject;
    let mut reserved = false;
    let mut replaced = None;
    for _ in 0..CLAIM_TRIES {
        match state
            .queue
            .admit(id, &user, &project, &label, &state.quotas, replacing)
            .await
        {
            Ok(Admission::Queued { .. }) => {
                let mut answer = queued(state, id, user, project);
                answer.replaced = replaced;
                return Ok(Some(answer));
            }
            Ok(Admission::OverQuota(hit)) => {
                withdraw(state, id, &user, &project, reserved).await?;
                return Err(ApiError::over_quota(hit));
            }
            Ok(Admission::LabelTaken) => {
                withdraw(state, id, &user, &project, reserved).await?;
                return Err(ApiError::Unprocessable(format!(
                    "the preview host {label} already belongs to another project (its label collides with this project's): use another projectId"
                )));
            }
            Ok(Admission::Conflict { holder }) => {
                reserved |= replacing && !state.quotas.is_off();
                // The row exists from here on: an error must not leave it queued with no entry.
                match holder_is_live(state, &holder).await {
                    Ok(true) => match replace(state, &holder, id, on_conflict).await {
                        Ok(Replacement::Done(r)) => {
                            replaced = Some(r);
                            continue; // its slot was released
                        }
                        Ok(Replacement::Gone) => {}
                        Ok(Replacement::Refused) => {
                            withdraw(state, id, &user, &project, reserved).await?;
                            return Err(conflict(holder));
                        }
                        Err(e) => {
                            withdraw(state, id, &user, &project, reserved).await?;
                            return Err(e);
                        }
                    },
                    Ok(false) => {}
                    Err(e) => {
                        withdraw(state, id, &user, &project, reserved).await?;
                        return Err(e);
                    }
                }
                tracing::warn!(stale = %holder, "releasing a stale in-flight claim");
                if let Err(e) = state.queue.release(&holder, &user, &project).await {
                    refund(state, id, &user, &project, reserved).await;
                    return Err(queue_unavailable(state, id, e).await);
                }
            }
            Err(e) => {
                refund(state, id, &user, &project, reserved).await;
                return Err(queue_unavailable(state, id, e).await);
            }
        }
    }
    withdraw(state, id, &user, &project, reserved).await?;
    Err(ApiError::Unavailable {
        what: "the in-flight claim",
        cause: anyhow::anyhow!("the project's claim kept changing"),
    })
}

/// A request that will not be queued after all: its quota unit back (if it took one), its row
/// gone (nobody has seen it).
async fn withdraw(
    state: &AppState,
    id: VersionId,
    user: &UserId,
    project: &ProjectId,
    reserved: bool,
) -> Result<(), ApiError> {
    refund(state, id, user, project, reserved).await;
    versions::delete_unclaimed(&state.db, id).await?;
    Ok(())
}

/// Gives back the quota unit a request reserved (best effort: a unit that cannot be given back
/// leaves the window with the others).
async fn refund(state: &AppState, id: VersionId, user: &UserId, project: &ProjectId, reserved: bool) {
    if !reserved {
        return;
    }
    if let Err(e) = state.queue.refund(id, user, project).await {
        tracing::warn!(error = %e, "cannot give back the quota unit of a build that was not queued");
    }
}

/// How often admission tries the project's claim: requests replacing each other (`onConflict`)
/// may find a new holder on each try.
const CLAIM_TRIES: usize = 5;

/// An insert whose answer was lost with Postgres may still have committed. The client is told
/// 503 and retries (as a new build), so a committed row must not also become a build once the
/// reconciler finds it queued without a stream entry: it is deleted (if still unclaimed) as
/// soon as Postgres answers again. The chaos suite's `postgres` scenario found the duplicate.
fn forget_if_committed(state: &AppState, id: VersionId) {
    let db = state.db.clone();
    tokio::spawn(async move {
        let forget = kiln_shared::db::patiently(
            "removing a row whose insert went unanswered",
            FORGET_PATIENCE,
            || versions::delete_unclaimed(&db, id),
        );
        if let Err(e) = forget.await {
            tracing::error!(build_id = %id, error = %e,
                "cannot remove a row whose insert went unanswered; the reconciler may queue it");
        }
    });
}

/// How long an unanswered insert's clean-up waits for Postgres (the reconciler leaves queued rows
/// alone for their first minute).
const FORGET_PATIENCE: std::time::Duration = std::time::Duration::from_secs(55);

/// What [`replace`] did with the build holding the project's slot.
enum Replacement {
    /// Superseded or cancelled; its slot was released.
    Done(Replaced),
    /// It ended meanwhile (another request replaced it first): its claim is stale, and the
    /// claim is tried again.
    Gone,
    /// It may not be replaced (a running build without `cancel-running`, a rollback): a 409.
    Refused,
}

/// Replaces the live build holding the project's slot, as `on_conflict` allows: a queued one is
/// superseded by `by`, a running one cancelled (`cancel-running` only). Its slot is released.
async fn replace(
    state: &AppState,
    holder: &str,
    by: VersionId,
    on_conflict: OnConflict,
) -> Result<Replacement, ApiError> {
    if on_conflict == OnConflict::Reject {
        return Ok(Replacement::Refused);
    }
    let Ok(old) = VersionId::parse(holder) else {
        return Ok(Replacement::Refused); // a rollback's hold: it lasts seconds
    };
    if let Some(v) = versions::supersede(&state.db, old, by).await? {
        tracing::info!(superseded = %old, "a queued build was superseded by a newer request");
        state.metrics.build_finished("superseded");
        let data = serde_json::json!({ "supersededBy": by });
        events::record(&state.db, old, EventType::BuildSuperseded, &data).await?;
        state
            .queue
            .release(holder, &v.user_id, &v.project_id)
            .await
            .map_err(|e| ApiError::Unavailable {
                what: "the build queue",
                cause: e.into(),
            })?;
        return Ok(Replacement::Done(Replaced {
            build_id: old,
            status: BuildStatus::Superseded,
        }));
    }
    if on_conflict != OnConflict::CancelRunning {
        // Not queued any more: running (a 409), or replaced by a request that raced this one.
        return Ok(match holder_is_live(state, holder).await? {
            true => Replacement::Refused,
            false => Replacement::Gone,
        });
    }
    match crate::lifecycle::cancel(state, old).await {
        Ok(_) => Ok(Replacement::Done(Replaced {
            build_id: old,
            status: BuildStatus::Cancelled,
        })),
        // It ended meanwhile: its claim is stale and is released on the next try.
        Err(ApiError::Conflict { .. }) => Ok(Replacement::Gone),
        Err(e) => Err(e),
    }
}

fn conflict(holder: String) -> ApiError {
    match holder.strip_prefix("rollback:") {
        Some(rollback) => ApiError::Conflict {
            message: format!("a rollback of this project is in progress: {rollback}"),
            build_id: rollback.to_owned(),
        },
        None => ApiError::Conflict {
            message: format!("another build of this project is queued or running: {holder}"),
            build_id: holder,
        },
    }
}

async fn queue_unavailable(state: &AppState, id: VersionId, e: kiln_shared::redis::QueueError) -> ApiError {
    tracing::error!(error = %e, "the build queue is unavailable");
    let reason = format!("the build queue is unavailable: {e}");
    match versions::mark_failed(&state.db, id, None, Step::Queue, &reason, &Metrics::default()).await {
        Ok(true) => {
            // Redis is down, so this event is only in Postgres (streams read it from there).
            let data = serde_json::json!({ "step": Step::Queue, "reason": reason });
            if let Err(db) = events::record(&state.db, id, EventType::BuildFailed, &data).await {
                tracing::error!(error = %db, "cannot record the failed admission's event");
            }
        }
        Ok(false) => {}
        Err(db) => tracing::error!(error = %db, "cannot record the failed admission"),
    }
    ApiError::QueueUnavailable {
        message: "the build queue is unavailable; the build was not queued and is recorded as failed".into(),
        build_id: id.to_string(),
    }
}

/// The build holding the project's slot, if it is still queued or running.
/// A Redis error here is not fatal: the atomic admission that follows decides, and records the
/// build as failed if Redis is really down.
async fn live_holder(
    state: &AppState,
    user: &UserId,
    project: &ProjectId,
) -> Result<Option<String>, ApiError> {
    let holder = match state.queue.inflight(user, project).await {
        Ok(Some(holder)) => holder,
        Ok(None) => return Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the in-flight claim");
            return Ok(None);
        }
    };
    Ok(holder_is_live(state, &holder).await?.then_some(holder))
}

/// The build holding the project's slot when it is still queued or running, as a 409.
pub(crate) async fn refuse_if_held(
    state: &AppState,
    user: &UserId,
    project: &ProjectId,
) -> Result<(), ApiError> {
    match live_holder(state, user, project).await? {
        Some(holder) => Err(conflict(holder)),
        None => Ok(()),
    }
}

/// A build holder is live while its build is queued or running; a rollback's hold expires by
/// itself, so it is always live.
pub(crate) async fn holder_is_live(state: &AppState, holder: &str) -> Result<bool, ApiError> {
    if holder.starts_with("rollback:") {
        return Ok(true);
    }
    let Ok(id) = VersionId::parse(holder) else {
        return Ok(false);
    };
    Ok(versions::get(&state.db, id)
        .await?
        .is_some_and(|v| !v.status.is_final()))
}

/// The version this build starts from: the given base (which must be a deployed version of
/// this project) or the project's latest deployed version.
async fn resolve_base(state: &AppState, req: &BuildRequest) -> Result<Option<Version>, ApiError> {
    let Some(base_id) = req.base else {
        let project = (req.user.clone(), req.project.clone());
        return Ok(state.admission.bases.call(project).await?);
    };
    let base = versions::get(&state.db, base_id)
        .await?
        .filter(|b| b.user_id == req.user && b.project_id == req.project)
        .ok_or_else(|| {
            unprocessable(format!(
                "baseVersionId {base_id} is not a version of project {}/{}",
                req.user, req.project
            ))
        })?;
    if base.status != BuildStatus::Deployed {
        return Err(unprocessable(format!(
            "baseVersionId {base_id} is {}, not deployed",
            base.status
        )));
    }
    Ok(Some(base))
}

/// The new version's source tree: the base's, minus `deleted`, plus `files`. Small text files
/// are kept inline in the tree (within its budget: [`Manifest::try_inline`]); the others are
/// uploaded as blobs (content-addressed: unchanged files cost nothing).
async fn source_manifest(
    state: &AppState,
    base: Option<&Version>,
    req: &BuildRequest,
) -> Result<Manifest, ApiError> {
    let mut manifest = match base {
        Some(b) => b.sources(&state.artifacts).await?,
        None => Manifest::default(),
    };
    for path in &req.deleted {
        if manifest.files.remove(path.as_str()).is_none() {
            return Err(unprocessable(format!(
                "deleted path {path} is not in the base version"
            )));
        }
    }
    let files = req.files.as_deref().unwrap_or_default();
    // The request's own files were checked when parsed; with the base's they may clash still.
    if base.is_some() {
        let paths = manifest.files.keys().map(String::as_str);
        if let Some((file, inner)) = file_and_folder(paths.chain(files.iter().map(|f| f.path.as_str()))) {
            return Err(unprocessable(format!(
                "path {file} is a file, and a folder of {inner}: a tree cannot hold both (delete one)"
            )));
        }
    }
    let blobs: Vec<&SourceFile> = files
        .iter()
        .filter(|f| !manifest.try_inline(f.path.as_str(), &f.content))
        .collect();
    let artifacts = Arc::new(state.artifacts.clone());
    let uploaded: BTreeMap<String, StoredBlob> = stream::iter(blobs.into_iter().map(|f| {
        let artifacts = artifacts.clone();
        let path = f.path.to_string();
        let body = Bytes::from(f.content.clone());
        async move { Ok::<_, ApiError>((path, artifacts.put_blob(body).await?)) }
    }))
    .buffer_unordered(16)
    .try_collect()
    .await?;
    for (path, blob) in uploaded {
        manifest.insert_stored(&path, blob);
    }
    Ok(manifest)
}

fn queued(state: &AppState, id: VersionId, user: UserId, project: ProjectId) -> Queued {
    Queued {
        build_id: id,
        status: BuildStatus::Queued,
        status_url: format!("/v1/builds/{id}"),
        preview_url: state.urls.version_url(id),
        latest_url: state.urls.latest_url(&user, &project),
        user_id: user,
        project_id: project,
        replaced: None,
    }
}
