use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestEntry {
    pub hash: String,
    pub size: u64,
    pub content_type: String,
}

/// path → blob. Paths are [`crate::domain::RelativePath`] strings; a `BTreeMap` keeps the JSON
/// stable, so equal trees give equal manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: BTreeMap<String, ManifestEntry>,
}

impl Manifest {
    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|e| e.size).sum()
    }

    pub fn insert(&mut self, path: &str, hash: String, size: u64) {
        let content_type = content_type_of(path);
        self.files.insert(
            path.to_owned(),
            ManifestEntry {
                hash,
                size,
                content_type,
            },
        );
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
}
