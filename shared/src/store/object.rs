//! What a backend provides: the minimal object API, and one object of a listing.

use bytes::Bytes;

use super::error::StoreError;

/// The minimal object API a backend provides. Writes are atomic: a reader sees the whole object
/// or none of it.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StoreError>;
    /// `None` when the object does not exist.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError>;
    /// The object's size in bytes; `None` when it does not exist.
    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError>;
    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.size(key).await.map(|s| s.is_some())
    }
    /// Stores the object unless it exists: `None` when it was stored, else the size of the
    /// object already there.
    async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<Option<u64>, StoreError> {
        if let Some(size) = self.size(key).await? {
            return Ok(Some(size));
        }
        self.put(key, body, content_type).await.map(|()| None)
    }
    /// Reachability, for `/readyz`.
    async fn check(&self) -> Result<(), StoreError>;
    /// Every object whose key starts with `prefix`, in no particular order, sent as they are
    /// found (a bounded channel: a listing of millions of objects takes little memory). An
    /// error ends the listing.
    fn list(&self, prefix: &str) -> tokio::sync::mpsc::Receiver<Result<ObjectInfo, StoreError>>;
    /// Removes an object; removing one that is absent is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Moves an object to another key and stamps it with the time of the move (its
    /// `modified`); false when there was nothing at `from`. A move interrupted half-way leaves
    /// the object at `from`, or at both keys, never at neither.
    async fn move_object(&self, from: &str, to: &str) -> Result<bool, StoreError>;
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Kiln's key (without a backend's own prefix).
    pub key: String,
    pub size: u64,
    pub modified: chrono::DateTime<chrono::Utc>,
}
