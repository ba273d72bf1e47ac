//! The workspace's files, as the stations read and write them: the sources laid out and
//! handed to the build's user, blocking work on the tree, and what the build wrote read back
//! beneath the project folder (package.json, the lockfile kept with the sources).

use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use kiln_shared::db::versions::{self, Version};
use kiln_shared::domain::Step;
use kiln_shared::store::{Artifacts, Manifest};

use super::failure::{beneath_failure, infra, reading, store_failure, Failure};
use crate::context::Builder;
use crate::sandbox::Confinement;
use crate::workspace::{LayOutError, Workspace};

/// The lockfile pnpm writes, kept with the sources so that the next build installs the same.
pub(super) const LOCKFILE: &str = "pnpm-lock.yaml";

/// Lays the workspace out with a manifest's files and gives it to the build user; returns
/// package.json's bytes when the manifest has one.
///
/// The files kept inline in the manifest (small text: all of a typical project's sources) are
/// written with the workspace's folders, and handed over when there is nothing else, in one
/// trip to the blocking pool. Blobs are then fetched 16 at a time, each written as it arrives,
/// and the hand-over comes last.
pub(super) async fn materialize(
    b: &Builder,
    version: &Version,
    manifest: &Manifest,
    ws: &Workspace,
    ids: Option<(u32, u32)>,
) -> Result<Option<Bytes>, Failure> {
    let (mut inline, mut stored) = (Vec::new(), Vec::new());
    for (path, entry) in &manifest.files {
        match &entry.inline {
            Some(text) => inline.push((path.clone(), Bytes::from(text.clone().into_bytes()))),
            None => stored.push((path.clone(), entry.clone())),
        }
    }
    let mut package_json = inline
        .iter()
        .find(|(path, _)| path == "package.json")
        .map(|(_, content)| content.clone());
    let laid_out = |e: LayOutError| infra(Step::Fetch, e.to_string());
    let first_attempt = version.attempts == 1;
    if stored.is_empty() {
        ws.lay_out(inline, first_attempt, move |root| {
            Confinement::hand_over(root, ids)
        })
        .await
        .map_err(laid_out)?;
        return Ok(package_json);
    }
    ws.lay_out(inline, first_attempt, |_| Ok(()))
        .await
        .map_err(laid_out)?;
    let project = ws.project();
    let writes = stored.into_iter().map(|(path, entry)| {
        let (artifacts, project) = (b.artifacts.clone(), project.clone());
        async move {
            let body = artifacts
                .read(&entry)
                .await
                .map_err(|e| store_failure(Step::Fetch, &e))?;
            Workspace::write_into(&project, &path, body.clone())
                .await
                .map_err(|e| infra(Step::Fetch, format!("writing {path}: {e}")))?;
            Ok::<_, Failure>((path == "package.json").then_some(body))
        }
    });
    let mut written = stream::iter(writes).buffer_unordered(16);
    while let Some(found) = written.try_next().await? {
        package_json = package_json.or(found);
    }
    hand_over(ws, ids, Step::Fetch).await?;
    Ok(package_json)
}

/// Gives the workspace, as Kiln wrote it, to the build's user `ids`.
pub(super) async fn hand_over(ws: &Workspace, ids: Option<(u32, u32)>, step: Step) -> Result<(), Failure> {
    let root = ws.root().to_owned();
    on_disk(step, "handing the workspace to the build user", move || {
        Confinement::hand_over(&root, ids)
    })
    .await
}

/// Runs `work` on the workspace's files in the blocking pool; its error is the farm's, at
/// `step`, saying `what` it was doing.
pub(super) async fn on_disk<T: Send + 'static>(
    step: Step,
    what: &'static str,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| infra(step, e.to_string()))?
        .map_err(|e| infra(step, format!("{what}: {e}")))
}

/// True when the files describing the dependencies (`described_by`: package.json of the folder
/// the install runs in, or every package.json of a pnpm workspace and its
/// `pnpm-workspace.yaml`) are the same as in the parent version, so the kept lockfile still
/// describes the dependencies and the install can be frozen.
pub(super) async fn package_json_unchanged(
    b: &Builder,
    version: &Version,
    sources: &Manifest,
    described_by: &[String],
) -> bool {
    let Some(parent) = version.parent_version_id else {
        return false;
    };
    let Ok(Some(parent)) = versions::get(&b.db, parent).await else {
        return false;
    };
    let Ok(parent_sources) = parent.sources(&b.artifacts).await else {
        return false;
    };
    let hashes = |m: &Manifest| {
        described_by
            .iter()
            .map(|path| m.files.get(path).map(|e| e.hash.clone()))
            .collect::<Vec<_>>()
    };
    let theirs = hashes(&parent_sources);
    theirs.first().is_some_and(Option::is_some) && theirs == hashes(sources)
}

/// Keeps the lockfile the install wrote (`lockfile`: its path from the top of the tree) with the
/// version's sources, so the next build of the
/// project installs exactly the same dependencies. The install's code wrote it: it is read
/// beneath the project folder, as a regular file of at most
/// [`MAX_LOCKFILE_BYTES`](crate::audit::lockfile::MAX_LOCKFILE_BYTES) (a link out of the
/// project, a FIFO or a larger file fails the build at `install`).
pub(super) async fn keep_lockfile(
    artifacts: &Artifacts,
    project: &std::path::Path,
    lockfile: &str,
    sources: &mut Manifest,
) -> Result<Option<Bytes>, Failure> {
    use crate::audit::lockfile::MAX_LOCKFILE_BYTES;
    let read = read_in_project(project, lockfile, MAX_LOCKFILE_BYTES as u64).await;
    let Some(body) = read.map_err(|e| beneath_failure(Step::Install, reading(&e), &e))? else {
        return Ok(None);
    };
    let hash = kiln_shared::store::sha256_hex(&body);
    if sources.files.get(lockfile).is_some_and(|e| e.hash == hash) {
        return Ok(Some(body));
    }
    let blob = artifacts
        .put_blob(body.clone())
        .await
        .map_err(|e| store_failure(Step::Install, &e))?;
    sources.insert_stored(lockfile, blob);
    Ok(Some(body))
}

/// The file `rel` of the project folder at `project`, read beneath it, at most `max_bytes`
/// (`None`: there is none). See [`crate::beneath::read_beneath`].
pub(super) async fn read_in_project(
    project: &std::path::Path,
    rel: &str,
    max_bytes: u64,
) -> Result<Option<Bytes>, crate::beneath::BeneathError> {
    let (project, shown, rel) = (project.to_owned(), rel.to_owned(), rel.to_owned());
    tokio::task::spawn_blocking(move || {
        let fd = crate::beneath::open_dir_path(&project)?;
        crate::beneath::read_beneath(&fd, &rel, max_bytes).map(|body| body.map(Bytes::from))
    })
    .await
    .map_err(|e| crate::beneath::BeneathError::Io {
        path: shown,
        source: std::io::Error::other(e),
    })?
}
