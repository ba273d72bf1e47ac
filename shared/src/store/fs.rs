use std::io::ErrorKind;
use std::path::PathBuf;

use bytes::Bytes;

use super::{ObjectStore, StoreError};

/// Objects as files under a root folder. A write goes to a temporary file in `<root>/.tmp` and is
/// renamed into place, so readers never see half an object.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, key: &str) -> PathBuf {
        // Keys are made by Kiln (hashes, ULIDs, fixed names), never by clients.
        debug_assert!(!key.split('/').any(|s| s == ".." || s.is_empty()));
        self.root.join(key)
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
        let path = self.path(key);
        let tmp_dir = self.root.join(".tmp");
        tokio::fs::create_dir_all(&tmp_dir).await.map_err(io(key))?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io(key))?;
        }
        let tmp = tmp_dir.join(ulid::Ulid::new().to_string());
        tokio::fs::write(&tmp, &body).await.map_err(io(key))?;
        if let Err(e) = tokio::fs::rename(&tmp, &path).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io(key)(e));
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match tokio::fs::read(self.path(key)).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(key)(e)),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        tokio::fs::try_exists(self.path(key)).await.map_err(io(key))
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
