//! The artifact store: content-addressed blobs (`blobs/sha256/<hash>`, or `<hash>.gz` when
//! kept compressed) plus one manifest per version and kind
//! (`manifests/<versionId>/{source,output}.json`, path → hash, size, encoding, content type),
//! and the fleet's package cache (`packages/sha512/<hex>`, `packages/meta/<name>`).
//! Two backends behind [`ObjectStore`]: the local filesystem (the embedded default) and S3
//! (R2, Garage, AWS).

mod blob;
pub mod encoding;
mod error;
mod fs;
mod manifest;
mod object;
mod s3;

use std::sync::Arc;

use bytes::Bytes;

pub use blob::{sha256_hex, BlobPlace, StoredBlob};
pub use encoding::Encoding;
pub use error::StoreError;
pub use fs::{FsStore, TMP_SUFFIX};
pub use manifest::{Manifest, ManifestEntry, ManifestKind};
pub use object::{ObjectInfo, ObjectStore};
pub use s3::S3Store;

use crate::config::{ArtifactsLocation, S3Settings};
use crate::domain::VersionId;

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

    pub fn blob_key(hash: &str, encoding: Encoding) -> String {
        BlobPlace::Hot.key(hash, encoding)
    }

    pub fn manifest_key(version: VersionId, kind: ManifestKind) -> String {
        format!("manifests/{version}/{}.json", kind.as_str())
    }

    /// A cached package's tarball, by its sha512 (hex): the fleet-wide package cache.
    pub fn package_key(sha512_hex: &str) -> String {
        format!("packages/sha512/{sha512_hex}")
    }

    /// A cached copy of a registry's metadata document (a packument), by a name of the
    /// cache's choosing.
    pub fn package_meta_key(name: &str) -> String {
        format!("packages/meta/{name}")
    }

    pub fn log_key(version: VersionId) -> String {
        format!("logs/{version}.log")
    }

    /// Stores a blob unless it is already there, gzip-compressed when that saves at least a
    /// tenth ([`encoding::encode`]).
    pub async fn put_blob(&self, body: Bytes) -> Result<StoredBlob, StoreError> {
        let hash = sha256_hex(&body);
        let size = body.len() as u64;
        let (encoding, stored) = encoding::encode(body).await;
        let key = Self::blob_key(&hash, encoding);
        let stored_size = stored.len() as u64;
        let present = self
            .inner
            .put_if_absent(&key, stored, "application/octet-stream")
            .await?;
        Ok(StoredBlob {
            hash,
            size,
            encoding,
            stored_size: present.unwrap_or(stored_size),
            uploaded: present.is_none(),
        })
    }

    /// A blob's stored bytes (still encoded), from wherever maintenance has put it: `blobs/`,
    /// else `archive/` (an archived version's), else `trash/` (collected while a new build
    /// came to reference it: it is moved back).
    pub async fn get_blob(&self, hash: &str, encoding: Encoding) -> Result<Bytes, StoreError> {
        if let Some(body) = self.inner.get(&BlobPlace::Hot.key(hash, encoding)).await? {
            return Ok(body);
        }
        if let Some(body) = self.inner.get(&BlobPlace::Archive.key(hash, encoding)).await? {
            return Ok(body);
        }
        let trash = BlobPlace::Trash.key(hash, encoding);
        if let Some(body) = self.inner.get(&trash).await? {
            tracing::warn!(hash, "a referenced blob was in the trash: moved back");
            self.inner
                .move_object(&trash, &BlobPlace::Hot.key(hash, encoding))
                .await?;
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

    /// The content of a manifest's entry: inline, or its blob (decompressed).
    pub async fn read(&self, entry: &ManifestEntry) -> Result<Bytes, StoreError> {
        self.read_as(entry, false).await.map(|(body, _)| body)
    }

    /// A manifest entry's bytes, still compressed when the blob is and `gzip_ok` (a client
    /// that accepts `Content-Encoding: gzip`), else its content; and the encoding of what is
    /// returned.
    pub async fn read_as(
        &self,
        entry: &ManifestEntry,
        gzip_ok: bool,
    ) -> Result<(Bytes, Encoding), StoreError> {
        if let Some(text) = &entry.inline {
            return Ok((Bytes::from(text.clone().into_bytes()), Encoding::Identity));
        }
        let stored = self.get_blob(&entry.hash, entry.encoding).await?;
        if entry.encoding == Encoding::Gzip && gzip_ok {
            return Ok((stored, Encoding::Gzip));
        }
        let body = encoding::decode(entry.encoding, stored, entry.size)
            .await
            .map_err(|e| StoreError::CorruptBlob {
                hash: entry.hash.clone(),
                reason: e.to_string(),
            })?;
        Ok((body, Encoding::Identity))
    }

    pub async fn has_blob(&self, hash: &str, encoding: Encoding) -> Result<bool, StoreError> {
        self.inner.exists(&Self::blob_key(hash, encoding)).await
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
