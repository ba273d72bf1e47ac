//! A build's private folder: `<work dir>/<build id>-<secret>/{project,home,tmp}`, removed when
//! the build ends, whatever happened.
//!
//! The secret part (80 random bits) keeps builds out of each other's workspaces where the
//! sandbox shows them the whole work folder (so that pnpm can hard-link from a store inside it):
//! the work folder is not listable by builds, and a workspace can only be entered by its name.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kiln_shared::domain::{RelativePath, VersionId};

#[derive(Debug)]
pub struct Workspace {
    id: VersionId,
    root: PathBuf,
}

/// Why a workspace could not be laid out.
#[derive(Debug, thiserror::Error)]
pub enum LayOutError {
    #[error("cannot create the workspace: {0}")]
    Create(std::io::Error),
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("handing the workspace to the build user: {0}")]
    HandOver(std::io::Error),
}

impl Workspace {
    /// The workspace of build `id` in `work_dir`, under a fresh name; nothing is on disk until
    /// [`Workspace::lay_out`].
    pub fn new(work_dir: &Path, id: VersionId) -> Self {
        let secret = ulid::Ulid::new().random();
        Self {
            id,
            root: work_dir.join(format!("{id}-{secret:020x}")),
        }
    }

    /// Makes the workspace's folders and writes `files` into its project folder, then runs
    /// `finish` on its root (the hand-over to the build user), all in one trip to the blocking
    /// pool: this is on the path from a build's start to its first process, where each trip
    /// costs a thread wake-up. `first_attempt`: no earlier attempt of the build can have left a
    /// workspace behind (later attempts discard those first).
    pub async fn lay_out(
        &self,
        files: Vec<(String, Bytes)>,
        first_attempt: bool,
        finish: impl FnOnce(&Path) -> std::io::Result<()> + Send + 'static,
    ) -> Result<(), LayOutError> {
        let (id, root) = (self.id, self.root.clone());
        tokio::task::spawn_blocking(move || {
            if !first_attempt {
                Self::discard_leftovers(&root, id).map_err(LayOutError::Create)?;
            }
            std::fs::create_dir(&root).map_err(LayOutError::Create)?;
            for dir in ["project", "home", "tmp"] {
                std::fs::create_dir(root.join(dir)).map_err(LayOutError::Create)?;
            }
            let project = root.join("project");
            for (path, content) in &files {
                write_blocking(&project, path, content).map_err(|source| LayOutError::Write {
                    path: path.clone(),
                    source,
                })?;
            }
            finish(&root).map_err(LayOutError::HandOver)
        })
        .await
        .map_err(|e| LayOutError::Create(std::io::Error::other(e)))?
    }

    /// Removes what an earlier attempt of build `id` left in the work folder of `root`.
    fn discard_leftovers(root: &Path, id: VersionId) -> std::io::Result<()> {
        let Some(work_dir) = root.parent() else {
            return Ok(());
        };
        let prefix = format!("{id}-");
        for entry in std::fs::read_dir(work_dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn project(&self) -> PathBuf {
        self.root.join("project")
    }

    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Writes one file under `project` (one trip to the blocking pool).
    pub async fn write_into(project: &Path, path: &str, content: Bytes) -> std::io::Result<()> {
        let (project, path) = (project.to_owned(), path.to_owned());
        tokio::task::spawn_blocking(move || write_blocking(&project, &path, &content))
            .await
            .map_err(std::io::Error::other)?
    }

    pub async fn remove(self) {
        match tokio::fs::remove_dir_all(&self.root).await {
            Ok(()) => {}
            // It was never laid out (the build ended before it was).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(error = %e, root = %self.root.display(), "cannot remove a workspace"),
        }
    }
}

/// Writes one file of the tree under `project` (the path is re-checked: manifests are data
/// too).
fn write_blocking(project: &Path, path: &str, content: &[u8]) -> std::io::Result<()> {
    let path = RelativePath::parse(path)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let target = project.join(path.as_str());
    if let Some(parent) = target.parent().filter(|p| *p != project) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(target, content)
}

/// Whether a name in the work folder is a build's workspace (`<build id>-<20 hex digits>`).
pub(crate) fn is_workspace_name(name: &str) -> bool {
    let Some((id, secret)) = name.split_once('-') else {
        return false;
    };
    kiln_shared::domain::VersionId::parse(id).is_ok()
        && id.len() == 26
        && secret.len() == 20
        && secret.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_workspace_is_laid_out_in_one_go_and_a_later_attempt_discards_the_earlier_ones() {
        let work = tempfile::tempdir().unwrap();
        let id = VersionId::new();
        let files = vec![
            ("package.json".to_owned(), Bytes::from_static(b"{}")),
            ("src/deep/App.tsx".to_owned(), Bytes::from_static(b"export {}")),
        ];
        let first = Workspace::new(work.path(), id);
        assert!(!first.root().exists(), "nothing on disk before it is laid out");
        let finished = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = finished.clone();
        first
            .lay_out(files.clone(), true, move |root| {
                *seen.lock().unwrap() = Some(names(root));
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(
            finished.lock().unwrap().clone().unwrap(),
            ["home", "project", "tmp"],
            "the hand-over runs on the whole workspace"
        );
        assert!(is_workspace_name(
            &first.root().file_name().unwrap().to_string_lossy()
        ));
        assert_eq!(
            std::fs::read(first.project().join("package.json")).unwrap(),
            b"{}"
        );
        assert_eq!(
            std::fs::read(first.project().join("src/deep/App.tsx")).unwrap(),
            b"export {}"
        );

        // A later attempt of the same build: the earlier workspace goes; another build's stays.
        let other = Workspace::new(work.path(), VersionId::new());
        other.lay_out(Vec::new(), true, |_| Ok(())).await.unwrap();
        let second = Workspace::new(work.path(), id);
        second.lay_out(files, false, |_| Ok(())).await.unwrap();
        let mut expected = vec![
            second.root().file_name().unwrap().to_string_lossy().into_owned(),
            other.root().file_name().unwrap().to_string_lossy().into_owned(),
        ];
        expected.sort();
        assert_eq!(names(work.path()), expected);

        // A path a manifest must not hold, and a failing hand-over, are errors that say so.
        let bad = Workspace::new(work.path(), VersionId::new());
        let err = bad
            .lay_out(vec![("../escape".to_owned(), Bytes::new())], true, |_| Ok(()))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, LayOutError::Write { path, .. } if path == "../escape"),
            "{err}"
        );
        assert!(!work.path().parent().unwrap().join("escape").exists());
        let refused = Workspace::new(work.path(), VersionId::new());
        let err = refused
            .lay_out(Vec::new(), true, |_| Err(std::io::Error::other("no")))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("handing the workspace to the build user"),
            "{err}"
        );

        // Removing one never laid out is quiet.
        Workspace::new(work.path(), VersionId::new()).remove().await;
        let root = second.root().to_owned();
        second.remove().await;
        assert!(!root.exists());
    }
}
