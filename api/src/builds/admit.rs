//! Admission of a parsed build request: the project's slot, latest pointer and quota read in
//! one round trip (and the signature's use recorded), the base version resolved, the sources
//! stored, then the row enqueued, with at most one queued-or-running build per project.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use kiln_shared::db::versions::{self, NewVersion, Version};
use kiln_shared::domain::{file_and_folder, BuildStatus, SourceFile, VersionId};
use kiln_shared::preview::project_label;
use kiln_shared::redis::{Preflight, SignatureRecord};
use kiln_shared::store::{Manifest, StoredBlob};

use super::context::Builds;
use super::enqueue::enqueue;
use super::request::{unprocessable, BuildRequest, OnConflict, Queued};
use super::slot::SlotHolder;
use crate::caller::refuse_replays;
use crate::error::ApiError;

/// Admits a parsed request: from the project's slot to the queue.
#[tracing::instrument(skip_all, fields(user_id = %req.user, project_id = %req.project, build_id))]
pub async fn admit(
    b: &Builds<'_>,
    req: BuildRequest,
    signature: Option<SignatureRecord>,
) -> Result<Queued, ApiError> {
    let id = VersionId::new();
    tracing::Span::current().record("build_id", tracing::field::display(id));

    // One Redis round trip: the project's slot, whether the KV has its latest pointer, and
    // whether its quota is used up. A Redis error here is not fatal: the atomic admission below
    // decides (slot and quota), and records the build as failed if Redis is really down.
    let label = project_label(&req.user, &req.project);
    let preflight = match b
        .queue
        .preflight(&req.user, &req.project, &label, b.quotas, signature.as_ref())
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
        refuse_replays(found)?;
    }
    let has_latest = preflight.has_latest;
    // Fast path for the common conflict: no upload, no row. A request that repeats the build in
    // flight is a 409, not a quota refusal, and costs no quota.
    if let Some(holder) = preflight.holder.as_deref().map(SlotHolder::parse) {
        let may_replace = req.on_conflict != OnConflict::Reject && !matches!(holder, SlotHolder::Rollback(_));
        if !may_replace && holder.is_live(b).await? {
            return Err(holder.conflict());
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
            false => resolve_base(b, &req).await?,
        };
        if let Some(queued) = enqueue(
            b,
            new_version(b, id, &req, base, assume_first).await?,
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
    b: &Builds<'_>,
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
    if generate && !b.generator {
        return Err(unprocessable(
            "this request has only a prompt, and this farm has no generator configured (KILN_GENERATOR_CMD); send files",
        ));
    }
    if base.is_none() && !req.deleted.is_empty() {
        return Err(unprocessable(
            "deleted needs a base version, and this project has none",
        ));
    }
    let source_manifest = source_manifest(b, base.as_ref(), req).await?;
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
        checks: req.checks,
        settings: req.settings.clone(),
        request_env: req.env.as_ref().map(|env| {
            env.iter()
                .map(|(name, value)| (name.to_string(), value.clone()))
                .collect()
        }),
        redeploy_of: None,
        force: req.force,
        only_if_first,
    })
}

/// The version this build starts from: the given base (which must be a deployed version of
/// this project) or the project's latest deployed version.
async fn resolve_base(b: &Builds<'_>, req: &BuildRequest) -> Result<Option<Version>, ApiError> {
    let Some(base_id) = req.base else {
        let project = (req.user.clone(), req.project.clone());
        return Ok(b.batch.bases.call(project).await?);
    };
    let base = versions::get(b.db, base_id)
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
    b: &Builds<'_>,
    base: Option<&Version>,
    req: &BuildRequest,
) -> Result<Manifest, ApiError> {
    let mut manifest = match base {
        Some(base) => base.sources(b.artifacts).await?,
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
            return Err(ApiError::InvalidPath(format!(
                "path {file} is a file, and a folder of {inner}: a tree cannot hold both (delete one)"
            )));
        }
    }
    let blobs: Vec<&SourceFile> = files
        .iter()
        .filter(|f| !manifest.try_inline(f.path.as_str(), &f.content))
        .collect();
    let artifacts = Arc::new(b.artifacts.clone());
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
