//! Warm dependency trees: per project, the `node_modules` of its last successful install on
//! this host, so that a later build of the project whose dependency key ([`key`]) matches gets
//! a copy of that tree instead of running `pnpm install`.
//!
//! - **The project's own.** A tree is kept under its `(user, project)` and given only to a
//!   build of that same project: no other tenant's build has touched it.
//! - **Taken before the build runs.** The copy is made when the install ends, before the
//!   checks and the build step: what they write into `node_modules` is not handed on. And each
//!   build gets a copy ([`tree`]): the build's own files copied, the store's read-only files
//!   linked.
//! - **Bounded.** `KILN_DEP_CACHE_MB` bounds the trees' bytes (counted in full); the least
//!   recently used go first. The host's upkeep (`kiln-builder maintain`) removes trees unused
//!   for [`UNUSED_FOR`], and all of them when it empties the pnpm store.
//! - **Said.** Every build's log and events say hit or miss and why (`install_skipped`, or the
//!   key's part that changed); `/metrics` counts hits, misses and bytes.
//!
//! On disk: `<work dir>/.kiln-deps/<project>/<digest>/` (the project's hashed name; one tree
//! per project) with `key.json` (the key's parts; its mtime is the tree's last use) and `bytes`
//! beside `tree/` (the `node_modules` folders at their places in the project). Root's alone (0700): no build can enter it. A tree is written
//! under a temporary name and renamed into place, so a tree on disk is whole. The index is this
//! daemon's cache of what is on disk; another daemon of the host (or the upkeep) may remove a
//! tree, and a tree that is gone is a miss.

pub mod key;
pub mod tree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

pub use key::{DepKey, KeyInputs, Refusal};

/// The cache's folder in the work folder.
pub const FOLDER: &str = ".kiln-deps";

/// Trees not used for this long are removed by the host's upkeep.
pub const UNUSED_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// One project's kept tree, as the index knows it.
#[derive(Debug, Clone)]
struct Kept {
    key: DepKey,
    bytes: u64,
    used: SystemTime,
}

/// A tree found for a build.
#[derive(Debug)]
pub enum Lookup {
    /// The project's tree has this key: restore it from here.
    Hit { tree: PathBuf },
    /// No tree with this key; why.
    Miss { reason: String },
}

/// What a restore or a save did.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    pub copied: tree::Copied,
    pub took: Duration,
}

/// The host's warm dependency trees (one per daemon; shared by its workers).
#[derive(Debug, Clone)]
pub struct DepCache(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    max_bytes: u64,
    /// The store's user: its files are linked, not copied.
    store_uid: Option<u32>,
    index: Mutex<HashMap<String, Kept>>,
    metrics: kiln_shared::metrics::Metrics,
}

impl DepCache {
    /// The cache in `work_dir`, bounded by `max_bytes`; reads what is on disk (trees kept by
    /// an earlier run of the daemon).
    pub async fn open(
        work_dir: &Path,
        max_bytes: u64,
        store_uid: Option<u32>,
        metrics: kiln_shared::metrics::Metrics,
    ) -> std::io::Result<Self> {
        let root = work_dir.join(FOLDER);
        let dir = root.clone();
        let index = tokio::task::spawn_blocking(move || read_index(&dir))
            .await
            .map_err(std::io::Error::other)??;
        let me = Self(Arc::new(Inner {
            root,
            max_bytes,
            store_uid,
            index: Mutex::new(index),
            metrics,
        }));
        me.publish_bytes();
        Ok(me)
    }

    /// The project's name on disk (its ids hashed: any characters, fixed length).
    fn project_dir(user: &str, project: &str) -> String {
        let mut h = Sha256::new();
        h.update(user.as_bytes());
        h.update([0]);
        h.update(project.as_bytes());
        hex::encode(&h.finalize()[..16])
    }

    /// The project's tree for `key`, or why there is none. The disk decides (another daemon of
    /// the host may have kept or removed it); the index says what changed on a miss.
    pub fn lookup(&self, user: &str, project: &str, key: &DepKey) -> Lookup {
        let name = Self::project_dir(user, project);
        let dir = self.0.root.join(&name).join(key.digest());
        let key_file = dir.join("key.json");
        let kept = {
            let mut index = self.0.index.lock().expect("not poisoned");
            match key_file.is_file() {
                true => {
                    if let Some(k) = index.get_mut(&name) {
                        k.used = SystemTime::now();
                    }
                    None
                }
                false => Some(index.get(&name).map(|k| k.key.clone())),
            }
        };
        if let Some(before) = kept {
            self.0.metrics.dep_cache_lookup(false);
            let reason = match before {
                Some(before) if before == *key => "its tree was removed from this builder".to_owned(),
                Some(before) => key.changed_from(&before),
                None => "no tree of this project on this builder".to_owned(),
            };
            return Lookup::Miss { reason };
        }
        self.0.metrics.dep_cache_lookup(true);
        // The upkeep reads a tree's last use from its key's mtime.
        let _ = std::fs::File::options()
            .append(true)
            .open(&key_file)
            .and_then(|f| f.set_modified(SystemTime::now()));
        Lookup::Hit {
            tree: dir.join("tree"),
        }
    }

    /// Copies the tree at `tree` into `project` (the `node_modules` folders at their places),
    /// owned by the build's `ids`. On failure, what it made is removed.
    pub async fn restore(
        &self,
        tree: PathBuf,
        project: &Path,
        ids: Option<(u32, u32)>,
    ) -> std::io::Result<Done> {
        let (store_uid, project) = (self.0.store_uid, project.to_owned());
        let started = Instant::now();
        tokio::task::spawn_blocking(move || {
            let mut copied = tree::Copied::default();
            let mut made = Vec::new();
            let result = (|| {
                for rel in modules_folders(&tree)? {
                    let to = project.join(&rel);
                    if to.symlink_metadata().is_ok() {
                        return Err(std::io::Error::other(format!("{rel} is already there")));
                    }
                    made.push(to.clone());
                    let c = tree::copy_tree(&tree.join(&rel), &to, store_uid, ids)?;
                    copied.entries += c.entries;
                    copied.bytes += c.bytes;
                }
                Ok(())
            })();
            if let Err(e) = result {
                for dir in made {
                    let _ = std::fs::remove_dir_all(dir);
                }
                return Err(e);
            }
            Ok(Done {
                copied,
                took: started.elapsed(),
            })
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Keeps the `node_modules` folders `folders` (from the top of `project`) as the project's
    /// tree for `key`, replacing the one it had; then evicts the least recently used trees past
    /// the bound. `Ok(None)`: the tree alone is past the bound, and not kept.
    pub async fn save(
        &self,
        user: &str,
        project_id: &str,
        key: &DepKey,
        project: &Path,
        folders: Vec<String>,
    ) -> std::io::Result<Option<Done>> {
        let name = Self::project_dir(user, project_id);
        let digest = key.digest();
        let (root, store_uid, max) = (self.0.root.clone(), self.0.store_uid, self.0.max_bytes);
        let (project, key_json) = (project.to_owned(), serde_json::to_vec_pretty(key)?);
        let started = Instant::now();
        let (dir, d) = (name.clone(), digest.clone());
        let copied = tokio::task::spawn_blocking(move || -> std::io::Result<Option<tree::Copied>> {
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir_all(&root)?;
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))?;
            let tmp = root.join(format!(".tmp-{}", ulid::Ulid::new()));
            std::fs::create_dir_all(tmp.join("tree"))?;
            let written = (|| {
                let mut copied = tree::Copied::default();
                for rel in &folders {
                    let to = tmp.join("tree").join(rel);
                    if let Some(parent) = to.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    let c = tree::copy_tree(&project.join(rel), &to, store_uid, None)?;
                    copied.entries += c.entries;
                    copied.bytes += c.bytes;
                    if copied.bytes > max {
                        return Ok(None);
                    }
                }
                std::fs::write(tmp.join("bytes"), copied.bytes.to_string())?;
                std::fs::write(tmp.join("key.json"), &key_json)?;
                let project_dir = root.join(&dir);
                let old: Vec<PathBuf> = match std::fs::read_dir(&project_dir) {
                    Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                    Err(_) => Vec::new(),
                };
                std::fs::create_dir_all(&project_dir)?;
                let place = project_dir.join(&d);
                for path in old.iter().filter(|p| **p != place) {
                    let _ = std::fs::remove_dir_all(path);
                }
                if place.exists() {
                    // The same tree, kept by another build meanwhile.
                    return Ok(Some(copied));
                }
                std::fs::rename(&tmp, &place)?;
                Ok(Some(copied))
            })();
            if tmp.exists() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            written
        })
        .await
        .map_err(std::io::Error::other)??;
        let Some(copied) = copied else {
            return Ok(None);
        };
        self.0.index.lock().expect("not poisoned").insert(
            name.clone(),
            Kept {
                key: key.clone(),
                bytes: copied.bytes,
                used: SystemTime::now(),
            },
        );
        self.evict_past_bound(&name).await;
        self.publish_bytes();
        Ok(Some(Done {
            copied,
            took: started.elapsed(),
        }))
    }

    /// Removes the least recently used trees (but `keep`) until the rest fit the bound.
    async fn evict_past_bound(&self, keep: &str) {
        let victims: Vec<PathBuf> = {
            let mut index = self.0.index.lock().expect("not poisoned");
            let mut total: u64 = index.values().map(|k| k.bytes).sum();
            let mut by_age: Vec<(SystemTime, String)> = index
                .iter()
                .filter(|(name, _)| name.as_str() != keep)
                .map(|(name, k)| (k.used, name.clone()))
                .collect();
            by_age.sort();
            let mut victims = Vec::new();
            for (_, name) in by_age {
                if total <= self.0.max_bytes {
                    break;
                }
                if let Some(k) = index.remove(&name) {
                    total -= k.bytes;
                    victims.push(self.0.root.join(&name));
                }
            }
            victims
        };
        if victims.is_empty() {
            return;
        }
        tracing::info!(
            trees = victims.len(),
            "evicting warm dependency trees past KILN_DEP_CACHE_MB"
        );
        let _ = tokio::task::spawn_blocking(move || {
            for dir in victims {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(error = %e, dir = %dir.display(), "cannot remove a dependency tree");
                }
            }
        })
        .await;
    }

    fn publish_bytes(&self) {
        let bytes: u64 = self
            .0
            .index
            .lock()
            .expect("not poisoned")
            .values()
            .map(|k| k.bytes)
            .sum();
        self.0.metrics.set_dep_cache_bytes(bytes);
    }
}

/// The `node_modules` folders a kept tree holds, from the top of the project (the tree's
/// `node_modules` folders, found without entering them).
fn modules_folders(tree: &Path) -> std::io::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut walk = walkdir::WalkDir::new(tree)
        .min_depth(1)
        .follow_links(false)
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(std::io::Error::other)?;
        if entry.file_type().is_dir() && entry.file_name() == "node_modules" {
            let rel = entry.path().strip_prefix(tree).map_err(std::io::Error::other)?;
            found.push(rel.to_string_lossy().into_owned());
            walk.skip_current_dir();
        }
    }
    Ok(found)
}

/// What is on disk: each project's tree with its key, bytes and last use; leftovers of
/// interrupted saves are removed.
fn read_index(root: &Path) -> std::io::Result<HashMap<String, Kept>> {
    let mut index = HashMap::new();
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(index),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") {
            let _ = std::fs::remove_dir_all(entry.path());
            continue;
        }
        let Ok(trees) = std::fs::read_dir(entry.path()) else {
            continue;
        };
        for tree in trees.flatten() {
            let key_file = tree.path().join("key.json");
            let key: Option<DepKey> = std::fs::read(&key_file)
                .ok()
                .and_then(|raw| serde_json::from_slice(&raw).ok());
            let Some(key) = key else {
                let _ = std::fs::remove_dir_all(tree.path());
                continue;
            };
            let used = std::fs::metadata(&key_file)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let bytes = std::fs::read_to_string(tree.path().join("bytes"))
                .ok()
                .and_then(|b| b.trim().parse().ok())
                .unwrap_or_else(|| {
                    walkdir::WalkDir::new(tree.path().join("tree"))
                        .follow_links(false)
                        .into_iter()
                        .filter_map(Result::ok)
                        .filter(|e| e.file_type().is_file())
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                });
            index.insert(name.clone(), Kept { key, bytes, used });
        }
    }
    Ok(index)
}

/// The host's upkeep: removes trees not used for `unused_for`, or every tree (`all`: the pnpm
/// store was emptied, and the trees' links would keep its files on disk). Returns the trees
/// removed.
pub fn trim(work_dir: &Path, unused_for: Duration, all: bool) -> std::io::Result<usize> {
    let root = work_dir.join(FOLDER);
    let index = read_index(&root)?;
    let now = SystemTime::now();
    let mut removed = 0;
    for (name, kept) in index {
        let old = now.duration_since(kept.used).unwrap_or_default() > unused_for;
        if all || old {
            std::fs::remove_dir_all(root.join(name))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests;
