//! A build's private folder: `<work dir>/<build id>-<secret>/{project,home,tmp}`, removed when
//! the build ends, whatever happened.
//!
//! The secret part (80 random bits) keeps builds out of each other's workspaces where the
//! sandbox shows them the whole work folder (so that pnpm can hard-link from a store inside it):
//! the work folder is not listable by builds, and a workspace can only be entered by its name.

use std::path::{Path, PathBuf};

use kiln_shared::domain::{RelativePath, VersionId};

#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    pub async fn create(work_dir: &Path, id: VersionId) -> std::io::Result<Self> {
        let work_dir = work_dir.to_owned();
        // One trip to the blocking pool rather than one per folder: this is on the path from a
        // build's start to its first process.
        tokio::task::spawn_blocking(move || Self::create_blocking(&work_dir, id))
            .await
            .map_err(std::io::Error::other)?
    }

    fn create_blocking(work_dir: &Path, id: VersionId) -> std::io::Result<Self> {
        // A leftover from a crashed attempt of the same build is discarded.
        let prefix = format!("{id}-");
        for entry in std::fs::read_dir(work_dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        let secret = ulid::Ulid::new().random();
        let root = work_dir.join(format!("{prefix}{secret:020x}"));
        let ws = Self { root };
        for dir in [ws.project(), ws.home(), ws.tmp()] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(ws)
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

    /// Writes one file of the tree (the path is re-checked: manifests are data too).
    pub async fn write(&self, path: &str, content: &[u8]) -> std::io::Result<()> {
        Self::write_into(&self.project(), path, content).await
    }

    /// Writes one file under `project`.
    pub async fn write_into(project: &Path, path: &str, content: &[u8]) -> std::io::Result<()> {
        let path = RelativePath::parse(path)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let target = project.join(path.as_str());
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::write(target, content).await
    }

    pub async fn remove(self) {
        if let Err(e) = tokio::fs::remove_dir_all(&self.root).await {
            tracing::warn!(error = %e, root = %self.root.display(), "cannot remove a workspace");
        }
    }
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
