//! Comparing two versions' source trees: which paths were added, removed or modified, with line
//! counts (`stat`), or a unified diff (`patch`). Only blobs that differ are read.

use std::collections::BTreeSet;

use futures::{stream, StreamExt, TryStreamExt};
use kiln_shared::store::{Artifacts, Manifest, ManifestEntry, StoreError};
use serde::Serialize;
use similar::{ChangeTag, TextDiff};

/// A file larger than this (either side) is reported changed without a line diff: a diff's
/// cost grows with the product of the sizes, and this runs on a request.
pub const MAX_DIFF_BYTES: usize = 1024 * 1024;

/// How long one file's line diff may search for the shortest edit: past it, `similar` finishes
/// with a correct but coarser diff (more lines shown changed than strictly needed).
const DIFF_DEADLINE: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Modified,
}

/// One changed path.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChange {
    pub path: String,
    pub change: ChangeKind,
    pub binary: bool,
    pub additions: usize,
    pub deletions: usize,
    #[serde(skip)]
    pub patch: String,
}

/// Text is what decodes as UTF-8 and holds no NUL in its first 8 KB (git's rule of thumb).
fn as_text(bytes: &[u8]) -> Option<&str> {
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

fn describe(path: &str, change: ChangeKind, old: &[u8], new: &[u8]) -> FileChange {
    let (a, b) = match change {
        ChangeKind::Added => ("/dev/null".to_owned(), format!("b/{path}")),
        ChangeKind::Removed => (format!("a/{path}"), "/dev/null".to_owned()),
        ChangeKind::Modified => (format!("a/{path}"), format!("b/{path}")),
    };
    let mut patch = format!("diff --git a/{path} b/{path}\n");
    match change {
        ChangeKind::Added => patch.push_str("new file\n"),
        ChangeKind::Removed => patch.push_str("deleted file\n"),
        ChangeKind::Modified => {}
    }
    if old.len().max(new.len()) > MAX_DIFF_BYTES {
        patch.push_str(&format!(
            "Files {a} and {b} differ (over {} MB: not compared line by line)\n",
            MAX_DIFF_BYTES / (1024 * 1024)
        ));
        return FileChange {
            path: path.to_owned(),
            change,
            binary: as_text(old).is_none() || as_text(new).is_none(),
            additions: 0,
            deletions: 0,
            patch,
        };
    }
    let (Some(old_text), Some(new_text)) = (as_text(old), as_text(new)) else {
        patch.push_str(&format!("Binary files {a} and {b} differ\n"));
        return FileChange {
            path: path.to_owned(),
            change,
            binary: true,
            additions: 0,
            deletions: 0,
            patch,
        };
    };
    let diff = TextDiff::configure()
        .timeout(DIFF_DEADLINE)
        .diff_lines(old_text, new_text);
    let (mut additions, mut deletions) = (0, 0);
    for c in diff.iter_all_changes() {
        match c.tag() {
            ChangeTag::Insert => additions += 1,
            ChangeTag::Delete => deletions += 1,
            ChangeTag::Equal => {}
        }
    }
    patch.push_str(
        &diff
            .unified_diff()
            .context_radius(3)
            .header(&a, &b)
            .missing_newline_hint(true)
            .to_string(),
    );
    FileChange {
        path: path.to_owned(),
        change,
        binary: false,
        additions,
        deletions,
        patch,
    }
}

/// The changes from `a` to `b`, in path order.
pub async fn compare<'m>(
    artifacts: &Artifacts,
    a: &'m Manifest,
    b: &'m Manifest,
) -> Result<Vec<FileChange>, StoreError> {
    let paths: BTreeSet<&String> = a.files.keys().chain(b.files.keys()).collect();
    let changed: Vec<(String, Option<&ManifestEntry>, Option<&ManifestEntry>)> = paths
        .into_iter()
        .filter_map(|p| {
            let (old, new) = (a.files.get(p), b.files.get(p));
            match (old, new) {
                (Some(o), Some(n)) if o.hash == n.hash => None,
                _ => Some((p.clone(), old, new)),
            }
        })
        .collect();
    let mut changes: Vec<FileChange> = stream::iter(changed.into_iter().map(|(path, old, new)| async move {
        let read = |entry: Option<&'m ManifestEntry>| async move {
            match entry {
                Some(e) => artifacts.read(e).await.map(|b| b.to_vec()),
                None => Ok(Vec::new()),
            }
        };
        let kind = match (&old, &new) {
            (None, _) => ChangeKind::Added,
            (_, None) => ChangeKind::Removed,
            _ => ChangeKind::Modified,
        };
        let (old, new) = futures::try_join!(read(old), read(new))?;
        // CPU work, off the server's worker threads.
        let key = path.clone();
        tokio::task::spawn_blocking(move || describe(&path, kind, &old, &new))
            .await
            .map_err(|e| StoreError::Io {
                key,
                source: std::io::Error::other(e),
            })
    }))
    .buffer_unordered(16)
    .try_collect()
    .await?;
    changes.sort_by(|x, y| x.path.cmp(&y.path));
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_and_writes_unified_hunks() {
        let c = describe(
            "src/a.ts",
            ChangeKind::Modified,
            b"one\ntwo\nthree\n",
            b"one\n2\nthree\nfour\n",
        );
        assert_eq!((c.additions, c.deletions, c.binary), (2, 1, false));
        assert!(
            c.patch
                .starts_with("diff --git a/src/a.ts b/src/a.ts\n--- a/src/a.ts\n+++ b/src/a.ts\n@@"),
            "{}",
            c.patch
        );
        assert!(c.patch.contains("-two\n+2\n"), "{}", c.patch);
        let added = describe("n.txt", ChangeKind::Added, b"", b"x\n");
        assert!(
            added.patch.contains("--- /dev/null\n+++ b/n.txt"),
            "{}",
            added.patch
        );
        assert_eq!(added.additions, 1);
    }

    #[test]
    fn a_worst_case_diff_ends_in_bounded_time_and_a_huge_file_is_not_diffed() {
        // Every line differs: the shortest-edit search is at its most expensive.
        let old: String = (0..60_000).map(|i| format!("old line {i}\n")).collect();
        let new: String = (0..60_000).map(|i| format!("new line {i}\n")).collect();
        let started = std::time::Instant::now();
        let c = describe("big.txt", ChangeKind::Modified, old.as_bytes(), new.as_bytes());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!((c.additions, c.deletions), (60_000, 60_000));
        let huge = vec![b'x'; MAX_DIFF_BYTES + 1];
        let c = describe("huge.txt", ChangeKind::Modified, b"x", &huge);
        assert!(c.patch.contains("not compared line by line"), "{}", c.patch);
        assert_eq!((c.additions, c.deletions), (0, 0));
    }

    #[test]
    fn binary_files_are_reported_as_such() {
        let c = describe(
            "logo.png",
            ChangeKind::Modified,
            b"\x89PNG\0\x01",
            b"\x89PNG\0\x02",
        );
        assert!(c.binary);
        assert!(c
            .patch
            .ends_with("Binary files a/logo.png and b/logo.png differ\n"));
    }
}
