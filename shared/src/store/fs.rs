use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::error::StoreError;
use super::object::{ObjectInfo, ObjectStore};

/// Objects as files under a root folder.
///
/// - Blobs (`blobs/sha256/<hash>`) are sharded by the hash's first two hex digits, so no folder
///   holds more than 1/256 of them.
/// - A write goes to a temporary file beside its target (`.<name>.<ulid>.tmp`) and is renamed
///   into place, so readers never see half an object and writers of different folders never
///   contend on one temporary folder.
/// - Each write runs as one blocking task, and folders known to exist are not created again.
/// - What it creates has fixed modes, whatever the process's umask ([`DIR_MODE`],
///   [`FILE_MODE`]).
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
    known_dirs: Arc<Mutex<HashSet<PathBuf>>>,
}

/// The mode of every folder the store creates. On a single host the API (as `kiln`), the
/// builders (as root) and the maintenance job (as `kiln`) share one store folder: each must add
/// files to a shard another one created, and maintenance must move and delete what any of them
/// wrote. The packages and the images create the store's root owned by group `kiln` and setgid,
/// so every folder below inherits the group; these modes make it writable by that group.
pub const DIR_MODE: u32 = 0o2775;

/// The mode of every object the store writes (see [`DIR_MODE`]; a move stamps the object's
/// time, which needs write access to it).
pub const FILE_MODE: u32 = 0o664;

/// Creates `dir` and its missing parents, each with [`DIR_MODE`].
fn create_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::create_dir(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => match dir.parent() {
            Some(parent) if parent != dir => {
                create_dirs(parent)?;
                create_dirs(dir)
            }
            _ => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Writes a new file with [`FILE_MODE`].
fn write_file(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
}

/// The suffix of temporary files (a crash can leave some; maintenance removes them).
pub const TMP_SUFFIX: &str = ".tmp";

impl FsStore {
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            known_dirs: Arc::default(),
        }
    }

    /// Where the object `key` lives on disk. Blobs (`…blobs/sha256/<hash>`, also under
    /// `archive/` and `trash/`) go to a shard folder named by the hash's first two digits.
    pub fn path_of(&self, key: &str) -> PathBuf {
        // Keys are made by Kiln (hashes, ULIDs, fixed names), never by clients.
        debug_assert!(!key.split('/').any(|s| s == ".." || s.is_empty()));
        match key.rsplit_once('/') {
            Some((dir, hash)) if is_blob_dir(dir) && hash.len() > 2 => {
                self.root.join(dir).join(&hash[..2]).join(hash)
            }
            _ => self.root.join(key),
        }
    }

    /// The key of the file at `path` (the inverse of [`Self::path_of`]); `None` for what is
    /// not an object (a temporary file, a name that is not UTF-8).
    fn key_of(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.root).ok()?.to_str()?;
        let (dir, name) = rel.rsplit_once('/')?;
        if name.starts_with('.') && name.ends_with(TMP_SUFFIX) {
            return None;
        }
        match dir.rsplit_once('/') {
            Some((blobs, shard)) if is_blob_dir(blobs) && shard.len() == 2 => Some(format!("{blobs}/{name}")),
            _ => Some(rel.to_owned()),
        }
    }

    /// Walks the folder of `prefix` (blocking), sending each object whose key starts with it.
    fn walk(&self, prefix: &str, tx: &tokio::sync::mpsc::Sender<Result<ObjectInfo, StoreError>>) {
        let start = match prefix.rsplit_once('/') {
            Some((dir, _)) => self.root.join(dir),
            None => self.root.clone(),
        };
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(io(prefix)(e)));
                    return;
                }
            };
            for entry in entries {
                let sent = entry.and_then(|entry| {
                    let meta = entry.metadata()?;
                    if meta.is_dir() {
                        stack.push(entry.path());
                        return Ok(true);
                    }
                    let Some(key) = self.key_of(&entry.path()).filter(|k| k.starts_with(prefix)) else {
                        return Ok(true);
                    };
                    let info = ObjectInfo {
                        key,
                        size: meta.len(),
                        modified: meta.modified()?.into(),
                    };
                    Ok(tx.blocking_send(Ok(info)).is_ok())
                });
                match sent {
                    Ok(true) => {}
                    // The receiver is gone: stop.
                    Ok(false) => return,
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(io(prefix)(e)));
                        return;
                    }
                }
            }
        }
    }

    fn ensure_dir(&self, dir: &Path) -> std::io::Result<()> {
        if self.known_dirs.lock().expect("dir cache poisoned").contains(dir) {
            return Ok(());
        }
        create_dirs(dir)?;
        let mut known = self.known_dirs.lock().expect("dir cache poisoned");
        if known.len() > 100_000 {
            known.clear();
        }
        known.insert(dir.to_path_buf());
        Ok(())
    }

    /// Writes `body` to `path` atomically (blocking).
    fn write_atomic(&self, path: &Path, body: &[u8]) -> std::io::Result<()> {
        let dir = path.parent().expect("object paths have a parent");
        self.ensure_dir(dir)?;
        let name = path
            .file_name()
            .expect("object paths have a name")
            .to_string_lossy();
        let tmp = dir.join(format!(".{name}.{}{TMP_SUFFIX}", ulid::Ulid::new()));
        if let Err(e) = write_file(&tmp, body).and_then(|()| std::fs::rename(&tmp, path)) {
            let _ = std::fs::remove_file(&tmp);
            if e.kind() == ErrorKind::NotFound {
                // The folder went away under the cache (a cleanup): forget it and retry once.
                self.known_dirs.lock().expect("dir cache poisoned").remove(dir);
                create_dirs(dir)?;
                write_file(&tmp, body)?;
                return std::fs::rename(&tmp, path);
            }
            return Err(e);
        }
        Ok(())
    }

    async fn blocking<T: Send + 'static>(
        &self,
        key: &str,
        f: impl FnOnce(&FsStore) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map_err(io(key))
    }
}

/// `blobs/sha256`, `archive/blobs/sha256`, `trash/blobs/sha256`.
fn is_blob_dir(dir: &str) -> bool {
    dir == "blobs/sha256" || dir.ends_with("/blobs/sha256")
}

fn io(key: &str) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        key: key.to_owned(),
        source,
    }
}

#[async_trait::async_trait]
impl ObjectStore for FsStore {
    async fn put(&self, key: &str, body: Bytes, _content_type: &str) -> Result<(), StoreError> {
        let path = self.path_of(key);
        self.blocking(key, move |s| s.write_atomic(&path, &body)).await
    }

    async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        _content_type: &str,
    ) -> Result<Option<u64>, StoreError> {
        let path = self.path_of(key);
        self.blocking(key, move |s| {
            match std::fs::metadata(&path) {
                Ok(meta) => return Ok(Some(meta.len())),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            s.write_atomic(&path, &body).map(|()| None)
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match tokio::fs::read(self.path_of(key)).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(key)(e)),
        }
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match tokio::fs::metadata(self.path_of(key)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(key)(e)),
        }
    }

    fn list(&self, prefix: &str) -> tokio::sync::mpsc::Receiver<Result<ObjectInfo, StoreError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let (store, prefix) = (self.clone(), prefix.to_owned());
        tokio::task::spawn_blocking(move || store.walk(&prefix, &tx));
        rx
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key);
        let blob = key.rsplit_once('/').is_some_and(|(dir, _)| is_blob_dir(dir));
        self.blocking(key, move |_| {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
            // A version's manifest folder goes with its last manifest (shards stay).
            if !blob {
                if let Some(dir) = path.parent() {
                    let _ = std::fs::remove_dir(dir);
                }
            }
            Ok(())
        })
        .await
    }

    async fn move_object(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        let (src, dst) = (self.path_of(from), self.path_of(to));
        self.blocking(from, move |s| {
            // Stamped before the rename: a move cut short leaves a fresher source, never a
            // moved object that looks old.
            match std::fs::File::options().write(true).open(&src) {
                Ok(f) => f.set_modified(std::time::SystemTime::now())?,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            }
            s.ensure_dir(dst.parent().expect("object paths have a parent"))?;
            match std::fs::rename(&src, &dst) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn check(&self) -> Result<(), StoreError> {
        tokio::fs::create_dir_all(&self.root).await.map_err(io("."))?;
        let meta = tokio::fs::metadata(&self.root).await.map_err(io("."))?;
        if meta.permissions().readonly() {
            return Err(StoreError::Io {
                key: ".".into(),
                source: std::io::Error::new(ErrorKind::PermissionDenied, "store root is read-only"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// The modes do not depend on the umask of whoever wrote first (a builder as root with
    /// 022, the API as `kiln` with 027), so the other writers of a shared store can still add
    /// to its folders and maintenance can move what is in them.
    #[tokio::test]
    async fn folders_and_objects_get_the_shared_modes_whatever_the_umask() {
        let root = tempfile::tempdir().unwrap();
        let store = FsStore::new(root.path().to_path_buf());
        store
            .put("blobs/sha256/ab/abcdef", Bytes::from_static(b"x"), "text/plain")
            .await
            .unwrap();
        let mode = |p: &str| {
            std::fs::metadata(root.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        for dir in ["blobs", "blobs/sha256", "blobs/sha256/ab"] {
            assert_eq!(mode(dir), DIR_MODE, "{dir}: {:o}", mode(dir));
        }
        assert_eq!(mode("blobs/sha256/ab/abcdef"), FILE_MODE);
        assert!(store
            .move_object("blobs/sha256/ab/abcdef", "trash/sha256/ab/abcdef")
            .await
            .unwrap());
        assert_eq!(mode("trash/sha256/ab"), DIR_MODE);
        assert_eq!(mode("trash/sha256/ab/abcdef"), FILE_MODE);
    }
}
