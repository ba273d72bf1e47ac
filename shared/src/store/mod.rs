//! The artifact store: content-addressed blobs (`blobs/sha256/<hash>`) plus one manifest per
//! version and kind (`manifests/<versionId>/{source,output}.json`, path → hash, size, content
//! type). Two backends behind [`ObjectStore`]: the local filesystem (the embedded default) and
//! S3 (R2, Garage, AWS).

mod fs;
mod manifest;
mod s3;

use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

pub use fs::{FsStore, TMP_SUFFIX};
pub use manifest::{Manifest, ManifestEntry, ManifestKind};
pub use s3::S3Store;

use crate::config::{ArtifactsLocation, S3Settings};
use crate::domain::VersionId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("artifact store I/O on {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("artifact store request for {key} failed: {reason}")]
    Remote { key: String, reason: String },
    #[error("manifest {key} is corrupt: {reason}")]
    CorruptManifest { key: String, reason: String },
    #[error("blob {hash} is missing from the artifact store")]
    MissingBlob { hash: String },
    #[error("manifest {key} is missing from the artifact store")]
    MissingManifest { key: String },
}

impl StoreError {
    /// The store could not be reached or could not write (a network error, an error answer, a
    /// full disk): trying again later may work. A corrupt or missing object stays so.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Io { .. } | StoreError::Remote { .. })
    }
}

/// The minimal object API a backend provides. Writes are atomic: a reader sees the whole object
/// or none of it.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StoreError>;
    /// `None` when the object does not exist.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError>;
    async fn exists(&self, key: &str) -> Result<bool, StoreError>;
    /// Stores the object unless it exists; true when it was stored.
    async fn put_if_absent(&self, key: &str, body: Bytes, content_type: &str) -> Result<bool, StoreError> {
        if self.exists(key).await? {
            return Ok(false);
        }
        self.put(key, body, content_type).await.map(|()| true)
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

/// Where a blob lives. Builds write `Hot`; maintenance moves the blobs only archived versions
/// use to `Archive` (an S3 lifecycle rule on the prefix can give them a cheaper storage class)
/// and unreferenced ones to `Trash` before deleting them for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobPlace {
    Hot,
    Archive,
    Trash,
}

impl BlobPlace {
    pub const ALL: [BlobPlace; 3] = [BlobPlace::Hot, BlobPlace::Archive, BlobPlace::Trash];

    /// The key prefix of this place's blobs.
    pub fn prefix(self) -> &'static str {
        match self {
            BlobPlace::Hot => "blobs/sha256/",
            BlobPlace::Archive => "archive/blobs/sha256/",
            BlobPlace::Trash => "trash/blobs/sha256/",
        }
    }

    pub fn key(self, hash: &str) -> String {
        format!("{}{hash}", self.prefix())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BlobPlace::Hot => "hot",
            BlobPlace::Archive => "archive",
            BlobPlace::Trash => "trash",
        }
    }
}

/// The hex SHA-256 of some bytes, which is a blob's name.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Kiln's view of the artifact store: blobs, manifests and logs.
#[derive(Debug, Clone)]
pub struct Artifacts {
    inner: Arc<dyn ObjectStore>,
}

impl Artifacts {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }

    /// Opens the configured backend.
    pub async fn open(location: &ArtifactsLocation, s3: &S3Settings) -> Result<Self, StoreError> {
        let inner: Arc<dyn ObjectStore> = match location {
            ArtifactsLocation::File(root) => Arc::new(FsStore::new(root.clone())),
            ArtifactsLocation::S3 { bucket, prefix } => {
                Arc::new(S3Store::connect(bucket.clone(), prefix.clone(), s3).await)
            }
        };
        Ok(Self { inner })
    }

    pub fn blob_key(hash: &str) -> String {
        BlobPlace::Hot.key(hash)
    }

    pub fn manifest_key(version: VersionId, kind: ManifestKind) -> String {
        format!("manifests/{version}/{}.json", kind.as_str())
    }

    pub fn log_key(version: VersionId) -> String {
        format!("logs/{version}.log")
    }

    /// Stores a blob unless it is already there; returns its hash and whether it was uploaded.
    pub async fn put_blob(&self, body: Bytes) -> Result<(String, bool), StoreError> {
        let hash = sha256_hex(&body);
        let key = Self::blob_key(&hash);
        let stored = self
            .inner
            .put_if_absent(&key, body, "application/octet-stream")
            .await?;
        Ok((hash, stored))
    }

    /// A blob's bytes, from wherever maintenance has put it: `blobs/`, else `archive/` (an
    /// archived version's), else `trash/` (collected while a new build came to reference it:
    /// it is moved back).
    pub async fn get_blob(&self, hash: &str) -> Result<Bytes, StoreError> {
        if let Some(body) = self.inner.get(&BlobPlace::Hot.key(hash)).await? {
            return Ok(body);
        }
        if let Some(body) = self.inner.get(&BlobPlace::Archive.key(hash)).await? {
            return Ok(body);
        }
        let trash = BlobPlace::Trash.key(hash);
        if let Some(body) = self.inner.get(&trash).await? {
            tracing::warn!(hash, "a referenced blob was in the trash: moved back");
            self.inner.move_object(&trash, &BlobPlace::Hot.key(hash)).await?;
            return Ok(body);
        }
        Err(StoreError::MissingBlob {
            hash: hash.to_owned(),
        })
    }

    /// The backend, for maintenance (listing, moving, deleting).
    pub fn objects(&self) -> &dyn ObjectStore {
        self.inner.as_ref()
    }

    /// The content of a manifest's entry: inline, or its blob.
    pub async fn read(&self, entry: &ManifestEntry) -> Result<Bytes, StoreError> {
        match &entry.inline {
            Some(text) => Ok(Bytes::from(text.clone().into_bytes())),
            None => self.get_blob(&entry.hash).await,
        }
    }

    pub async fn has_blob(&self, hash: &str) -> Result<bool, StoreError> {
        self.inner.exists(&Self::blob_key(hash)).await
    }

    pub async fn put_manifest(&self, key: &str, manifest: &Manifest) -> Result<(), StoreError> {
        let body = serde_json::to_vec(manifest).expect("a manifest always serialises");
        self.inner.put(key, Bytes::from(body), "application/json").await
    }

    /// `None` when there is no manifest under `key`.
    pub async fn get_manifest(&self, key: &str) -> Result<Option<Manifest>, StoreError> {
        let Some(body) = self.inner.get(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| StoreError::CorruptManifest {
                key: key.to_owned(),
                reason: e.to_string(),
            })
    }

    pub async fn put_log(&self, version: VersionId, log: Bytes) -> Result<(), StoreError> {
        self.inner
            .put(&Self::log_key(version), log, "text/plain; charset=utf-8")
            .await
    }

    pub async fn get_log(&self, version: VersionId) -> Result<Option<Bytes>, StoreError> {
        self.inner.get(&Self::log_key(version)).await
    }

    pub async fn check(&self) -> Result<(), StoreError> {
        self.inner.check().await
    }
}
