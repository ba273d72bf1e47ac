//! Storing a tree: every regular file becomes a content-addressed blob (uploaded only when the
//! store does not have it) and the tree becomes a manifest. Symlinks are followed only when they
//! stay inside the tree, and a link (symbolic or hard) that leaves it fails the build; special
//! files and `.git*` entries are skipped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};
use kiln_shared::domain::RelativePath;
use kiln_shared::store::{Artifacts, Manifest, StoreError, StoredBlob};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the output is larger than the limit of {limit_mb} MB")]
    TooLarge { limit_mb: u64 },
    #[error("the output has more than {limit} files (KILN_MAX_OUTPUT_FILES)")]
    TooMany { limit: usize },
    #[error("the output has no files")]
    Empty,
    #[error("{path} is a symbolic link to {target}, which is outside the output: Kiln does not publish links that leave it")]
    LinkOut { path: String, target: String },
    #[error("{path} is a hard link to a file outside the output: Kiln does not publish it")]
    HardLinkOut { path: String },
    #[error("reading the output: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PublishError {
    /// The output's fault (the build fails at once), not the store's or the disk's.
    pub fn is_the_outputs(&self) -> bool {
        matches!(
            self,
            Self::TooLarge { .. }
                | Self::TooMany { .. }
                | Self::Empty
                | Self::LinkOut { .. }
                | Self::HardLinkOut { .. }
        )
    }
}

/// What an output may hold.
#[derive(Debug, Clone, Copy)]
pub struct OutputLimits {
    pub max_bytes: u64,
    pub max_files: usize,
}

/// Files of a tree: (relative path, absolute path, size). Refuses trees over the limits and
/// links that leave the tree (symbolic or hard); skips special files and names Kiln cannot
/// serve.
pub fn collect(
    root: &Path,
    limits: OutputLimits,
    skip_dirs: &[&str],
) -> Result<Vec<(RelativePath, PathBuf, u64)>, PublishError> {
    use std::os::unix::fs::MetadataExt;
    let canonical_root = root.canonicalize()?;
    let mut files = Vec::new();
    let mut total = 0u64;
    // (device, inode) of files with more than one link → (links, seen in the tree, a path)
    let mut linked: std::collections::HashMap<(u64, u64), (u64, u64, String)> = Default::default();
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
        let rel = path.strip_prefix(root).expect("walkdir stays under its root");
        let target = if ft.is_symlink() {
            // Followed only when it resolves to a regular file inside the tree.
            match path.canonicalize() {
                Ok(t) if t.starts_with(&canonical_root) => {
                    if !t.is_file() {
                        continue; // a link to a folder of the tree: its files are published anyway
                    }
                    t
                }
                resolved => {
                    let target = std::fs::read_link(path)
                        .map(|t| t.display().to_string())
                        .or_else(|_| resolved.map(|t| t.display().to_string()))
                        .unwrap_or_else(|e| e.to_string());
                    return Err(PublishError::LinkOut {
                        path: rel.display().to_string(),
                        target,
                    });
                }
            }
        } else if ft.is_file() {
            path.to_path_buf()
        } else {
            continue; // directories, sockets, fifos, devices
        };
        let Some(rel) = rel.to_str().and_then(|r| RelativePath::parse(r).ok()) else {
            tracing::warn!(path = %path.display(), "skipping a file whose name Kiln cannot serve");
            continue;
        };
        let meta = std::fs::metadata(&target)?;
        if !ft.is_symlink() && meta.nlink() > 1 {
            let seen =
                linked
                    .entry((meta.dev(), meta.ino()))
                    .or_insert((meta.nlink(), 0, rel.as_str().to_owned()));
            seen.1 += 1;
        }
        total += meta.len();
        if total > limits.max_bytes {
            return Err(PublishError::TooLarge {
                limit_mb: limits.max_bytes / (1024 * 1024),
            });
        }
        if files.len() == limits.max_files {
            return Err(PublishError::TooMany {
                limit: limits.max_files,
            });
        }
        files.push((rel, target, meta.len()));
    }
    // A file with more links than the tree holds is linked from outside it.
    if let Some((_, _, path)) = linked.into_values().find(|(links, seen, _)| seen < links) {
        return Err(PublishError::HardLinkOut { path });
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
    let results: Vec<(RelativePath, StoredBlob)> =
        stream::iter(files.into_iter().map(|(rel, abs, _size)| {
            let artifacts = artifacts.clone();
            async move {
                let body = Bytes::from(tokio::fs::read(&abs).await?);
                let blob = artifacts.put_blob(body).await?;
                Ok::<_, PublishError>((rel, blob))
            }
        }))
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let mut manifest = Manifest::default();
    let mut new_blobs = 0;
    for (rel, blob) in results {
        new_blobs += usize::from(blob.uploaded);
        manifest.insert_stored(rel.as_str(), blob);
    }
    Ok((manifest, new_blobs))
}
