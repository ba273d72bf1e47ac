use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::{ObjectStore, StoreError};

/// Objects as files under a root folder.
///
/// - Blobs (`blobs/sha256/<hash>`) are sharded by the hash's first two hex digits, so no folder
///   holds more than 1/256 of them.
/// - A write goes to a temporary file beside its target (`.<name>.<ulid>.tmp`) and is renamed
///   into place, so readers never see half an object and writers of different folders never
///   contend on one temporary folder.
/// - Each write runs as one blocking task, and folders known to exist are not created again.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
    known_dirs: Arc<Mutex<HashSet<PathBuf>>>,
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

    /// Where the object `key` lives on disk.
    pub fn path_of(&self, key: &str) -> PathBuf {
        // Keys are made by Kiln (hashes, ULIDs, fixed names), never by clients.
        debug_assert!(!key.split('/').any(|s| s == ".." || s.is_empty()));
        match key.strip_prefix("blobs/sha256/") {
            Some(hash) if hash.len() > 2 => self.root.join("blobs/sha256").join(&hash[..2]).join(hash),
            _ => self.root.join(key),
        }
    }

    fn ensure_dir(&self, dir: &Path) -> std::io::Result<()> {
        if self.known_dirs.lock().expect("dir cache poisoned").contains(dir) {
            return Ok(());
        }
        std::fs::create_dir_all(dir)?;
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
        if let Err(e) = std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, path)) {
            let _ = std::fs::remove_file(&tmp);
            if e.kind() == ErrorKind::NotFound {
                // The folder went away under the cache (a cleanup): forget it and retry once.
                self.known_dirs.lock().expect("dir cache poisoned").remove(dir);
                std::fs::create_dir_all(dir)?;
                std::fs::write(&tmp, body)?;
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

    async fn put_if_absent(&self, key: &str, body: Bytes, _content_type: &str) -> Result<bool, StoreError> {
        let path = self.path_of(key);
        self.blocking(key, move |s| {
            if path.try_exists()? {
                return Ok(false);
            }
            s.write_atomic(&path, &body).map(|()| true)
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

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        tokio::fs::try_exists(self.path_of(key)).await.map_err(io(key))
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
