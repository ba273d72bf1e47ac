//! Blobs: named by the SHA-256 of their content, kept in one of three places.

use sha2::{Digest, Sha256};

use super::encoding::Encoding;

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

    /// The key of the blob `hash` stored with `encoding` here.
    pub fn key(self, hash: &str, encoding: Encoding) -> String {
        format!("{}{hash}{}", self.prefix(), encoding.suffix())
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

/// A blob as [`Artifacts::put_blob`] left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// The SHA-256 of the content.
    pub hash: String,
    /// The content's size.
    pub size: u64,
    pub encoding: Encoding,
    /// The stored object's size (the one already there, when it was).
    pub stored_size: u64,
    /// Whether this call uploaded it (false: it was there).
    pub uploaded: bool,
}
