//! Storing a tree: every regular file becomes a content-addressed blob (uploaded only when the
//! store does not have it) and the tree becomes a manifest. Symlinks are followed only when they
//! stay inside the tree; special files and `.git*` entries are skipped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use kiln_shared::domain::RelativePath;
use kiln_shared::store::{Artifacts, Manifest, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the output is larger than the limit of {limit_mb} MB")]
    TooLarge { limit_mb: u64 },
    #[error("the output has no files")]
    Empty,
    #[error("reading the output: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Files of a tree: (relative path, absolute path, size). Refuses trees over `max_bytes`.
pub fn collect(
    root: &Path,
    max_bytes: u64,
    skip_dirs: &[&str],
) -> Result<Vec<(RelativePath, PathBuf, u64)>, PublishError> {
    let canonical_root = root.canonicalize()?;
    let mut files = Vec::new();
    let mut total = 0u64;
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            e.depth() == 0
                || !(name.starts_with(".git") || (e.depth() == 1 && skip_dirs.contains(&name.as_ref())))
        });
    for entry in walker {
        let entry = entry.map_err(|e| std::io::Error::other(e.to_string()))?;
        let ft = entry.file_type();
        let path = entry.path();
        let target = if ft.is_symlink() {
            // Followed only when it resolves to a regular file inside the tree.
            match path.canonicalize() {
                Ok(t) if t.starts_with(&canonical_root) && t.is_file() => t,
                _ => {
                    tracing::warn!(path = %path.display(), "skipping a symlink that leaves the output");
                    continue;
                }
            }
        } else if ft.is_file() {
            path.to_path_buf()
        } else {
            continue; // directories, sockets, fifos, devices
        };
        let rel = path.strip_prefix(root).expect("walkdir stays under its root");
        let Some(rel) = rel.to_str().and_then(|r| RelativePath::parse(r).ok()) else {
            tracing::warn!(path = %path.display(), "skipping a file whose name Kiln cannot serve");
            continue;
        };
        let size = std::fs::metadata(&target)?.len();
        total += size;
        if total > max_bytes {
            return Err(PublishError::TooLarge {
                limit_mb: max_bytes / (1024 * 1024),
            });
        }
        files.push((rel, target, size));
    }
    Ok(files)
}

/// Uploads the blobs of `files` (16 at a time) and returns the tree's manifest and how many
/// blobs were new.
pub async fn upload(
    artifacts: &Artifacts,
    files: Vec<(RelativePath, PathBuf, u64)>,
) -> Result<(Manifest, usize), PublishError> {
    let artifacts = Arc::new(artifacts.clone());
    let results: Vec<(RelativePath, String, u64, bool)> =
        stream::iter(files.into_iter().map(|(rel, abs, size)| {
            let artifacts = artifacts.clone();
            async move {
                let body = Bytes::from(tokio::fs::read(&abs).await?);
                let (hash, uploaded) = artifacts.put_blob(body).await?;
                Ok::<_, PublishError>((rel, hash, size, uploaded))
            }
        }))
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let mut manifest = Manifest::default();
    let mut new_blobs = 0;
    for (rel, hash, size, uploaded) in results {
        new_blobs += usize::from(uploaded);
        manifest.insert(rel.as_str(), hash, size);
    }
    Ok((manifest, new_blobs))
}
