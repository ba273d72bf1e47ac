use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::blob::{sha256_hex, StoredBlob};
use super::encoding::Encoding;

/// What a manifest lists: a version's sources or its built output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    Source,
    Output,
}

impl ManifestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ManifestKind::Source => "source",
            ManifestKind::Output => "output",
        }
    }
}

/// Source files of at most this many bytes of UTF-8 are kept in the manifest itself instead of
/// a blob of their own...
pub const INLINE_MAX_BYTES: usize = 1024;
/// ...while the manifest's inline bytes stay within this budget, so that a version's row stays
/// small however many small files its project has (the others go to blobs).
pub const INLINE_BUDGET_BYTES: u64 = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestEntry {
    pub hash: String,
    /// The content's size.
    pub size: u64,
    pub content_type: String,
    /// How the blob is stored (absent: as it is, which every manifest from before
    /// compression says).
    #[serde(default, skip_serializing_if = "Encoding::is_identity")]
    pub encoding: Encoding,
    /// The stored object's size, when it differs from `size` (a compressed blob): what
    /// verification checks the object against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_size: Option<u64>,
    /// The content, for a small text file kept inline: no blob holds it (`hash` is still its
    /// SHA-256, so diffs and caches compare entries the same way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
}

impl ManifestEntry {
    /// An uncompressed blob's entry.
    fn blob(path: &str, hash: String, size: u64) -> Self {
        ManifestEntry {
            hash,
            size,
            content_type: content_type_of(path),
            encoding: Encoding::Identity,
            stored_size: None,
            inline: None,
        }
    }

    /// The size the stored object should have.
    pub fn expected_stored_size(&self) -> Option<u64> {
        match self.encoding {
            Encoding::Identity => Some(self.size),
            Encoding::Gzip => self.stored_size,
        }
    }
}

/// path → blob. Paths are [`crate::domain::RelativePath`] strings; a `BTreeMap` keeps the JSON
/// stable, so equal trees give equal manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: BTreeMap<String, ManifestEntry>,
}

impl Manifest {
    /// About how many bytes this manifest takes in memory: each entry's strings (path, hash,
    /// content type, inline content) and a fixed overhead for the rest. For weighing caches.
    pub fn estimated_memory(&self) -> u64 {
        const PER_ENTRY: usize = 128;
        let bytes: usize = self
            .files
            .iter()
            .map(|(path, e)| {
                PER_ENTRY
                    + path.len()
                    + e.hash.len()
                    + e.content_type.len()
                    + e.inline.as_ref().map_or(0, String::len)
            })
            .sum();
        bytes as u64
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|e| e.size).sum()
    }

    /// Lists an uncompressed blob under `path`.
    pub fn insert(&mut self, path: &str, hash: String, size: u64) {
        self.files
            .insert(path.to_owned(), ManifestEntry::blob(path, hash, size));
    }

    /// Lists the blob `put_blob` stored under `path`.
    pub fn insert_stored(&mut self, path: &str, blob: StoredBlob) {
        let mut entry = ManifestEntry::blob(path, blob.hash, blob.size);
        if !blob.encoding.is_identity() {
            entry.encoding = blob.encoding;
            entry.stored_size = Some(blob.stored_size);
        }
        self.files.insert(path.to_owned(), entry);
    }

    /// The bytes of the files kept inline.
    pub fn inline_bytes(&self) -> u64 {
        self.files
            .values()
            .filter(|e| e.inline.is_some())
            .map(|e| e.size)
            .sum()
    }

    /// Keeps `content` inline under `path` when it is small text and the inline budget allows
    /// (true), else leaves the manifest as it was (false: the file needs a blob).
    pub fn try_inline(&mut self, path: &str, content: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(content) else {
            return false;
        };
        let replaced = self
            .files
            .get(path)
            .filter(|e| e.inline.is_some())
            .map_or(0, |e| e.size);
        let budget = INLINE_BUDGET_BYTES.saturating_sub(self.inline_bytes() - replaced);
        if content.len() > INLINE_MAX_BYTES || content.len() as u64 > budget {
            return false;
        }
        self.files.insert(
            path.to_owned(),
            ManifestEntry {
                inline: Some(text.to_owned()),
                ..ManifestEntry::blob(path, sha256_hex(content), content.len() as u64)
            },
        );
        true
    }
}

/// The content type a file is served with, from its extension.
pub fn content_type_of(path: &str) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let text_like =
        mime.type_() == "text" || matches!(mime.subtype().as_str(), "javascript" | "json" | "xml" | "svg");
    if text_like {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(content_type_of("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type_of("assets/a.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type_of("a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type_of("logo.png"), "image/png");
        assert_eq!(content_type_of("LICENSE"), "application/octet-stream");
    }

    #[test]
    fn small_text_is_inlined_within_the_budget() {
        let mut m = Manifest::default();
        assert!(m.try_inline("index.html", b"<h1>hi</h1>"));
        let e = &m.files["index.html"];
        assert_eq!(e.inline.as_deref(), Some("<h1>hi</h1>"));
        assert_eq!(e.hash, crate::store::sha256_hex(b"<h1>hi</h1>"));
        assert_eq!(e.size, 11);

        // Binary, or too big: a blob.
        assert!(!m.try_inline("logo.png", &[0xff, 0xfe, 0x00]));
        assert!(!m.try_inline("big.js", &vec![b'a'; INLINE_MAX_BYTES + 1]));
        assert!(!m.files.contains_key("logo.png") && !m.files.contains_key("big.js"));

        // The budget counts what is inline already; replacing a file frees its old bytes.
        let kb = vec![b'x'; INLINE_MAX_BYTES];
        let fit = (INLINE_BUDGET_BYTES as usize - 11) / INLINE_MAX_BYTES;
        for i in 0..fit {
            assert!(m.try_inline(&format!("f{i}.txt"), &kb), "file {i} fits");
        }
        assert!(!m.try_inline("one-more.txt", &kb));
        assert!(
            m.try_inline("f0.txt", &kb),
            "a replaced file reuses its own bytes"
        );
        assert!(m.inline_bytes() <= INLINE_BUDGET_BYTES);

        // Old manifests (no `inline` field) still read, and blob entries write no `inline`.
        let old: ManifestEntry =
            serde_json::from_str(r#"{"hash":"ab","size":1,"contentType":"text/plain"}"#).unwrap();
        assert_eq!(
            (&old.inline, old.encoding, old.stored_size),
            (&None, Encoding::Identity, None)
        );
        let written = serde_json::to_string(&old).unwrap();
        assert!(!written.contains("inline") && !written.contains("encoding"));
        let gz: ManifestEntry = serde_json::from_str(
            r#"{"hash":"ab","size":100,"contentType":"text/plain","encoding":"gzip","storedSize":60}"#,
        )
        .unwrap();
        assert_eq!(
            (gz.encoding, gz.expected_stored_size()),
            (Encoding::Gzip, Some(60))
        );
    }
}
