use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::path::{PathError, RelativePath};

/// Caps on one request's files.
#[derive(Debug, Clone, Copy)]
pub struct FileLimits {
    pub max_files: usize,
    pub max_file_bytes: usize,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self {
            max_files: 5_000,
            max_file_bytes: 10 * 1024 * 1024,
        }
    }
}

/// How a file's `content` is written in JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileEncoding {
    #[default]
    Utf8,
    Base64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("files[{index}]: {source}")]
    Path { index: usize, source: PathError },
    #[error("files[{index}] ({path}): content is not valid base64")]
    Base64 { index: usize, path: String },
    #[error("files[{index}] ({path}) is {size} bytes; the limit is {limit} bytes per file")]
    TooLarge {
        index: usize,
        path: String,
        size: usize,
        limit: usize,
    },
    #[error("{count} files given; the limit is {limit} files per request")]
    TooMany { count: usize, limit: usize },
    #[error("path {0} is given twice")]
    Duplicate(String),
}

/// One file of a project's source tree, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: RelativePath,
    pub content: Vec<u8>,
}

/// The wire shape of a file: `{path, content, encoding?}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FileInput {
    pub path: String,
    pub content: String,
    #[serde(default)]
    pub encoding: FileEncoding,
}

impl SourceFile {
    /// Decodes and checks a list of wire files (later duplicates of a path are refused).
    pub fn parse_all(inputs: &[FileInput], limits: FileLimits) -> Result<Vec<Self>, FileError> {
        if inputs.len() > limits.max_files {
            return Err(FileError::TooMany {
                count: inputs.len(),
                limit: limits.max_files,
            });
        }
        let mut seen = std::collections::HashSet::with_capacity(inputs.len());
        let mut out = Vec::with_capacity(inputs.len());
        for (index, input) in inputs.iter().enumerate() {
            let path =
                RelativePath::parse(&input.path).map_err(|source| FileError::Path { index, source })?;
            let content = match input.encoding {
                FileEncoding::Utf8 => input.content.as_bytes().to_vec(),
                FileEncoding::Base64 => base64::engine::general_purpose::STANDARD
                    .decode(input.content.as_bytes())
                    .map_err(|_| FileError::Base64 {
                        index,
                        path: path.to_string(),
                    })?,
            };
            if content.len() > limits.max_file_bytes {
                return Err(FileError::TooLarge {
                    index,
                    path: path.to_string(),
                    size: content.len(),
                    limit: limits.max_file_bytes,
                });
            }
            if !seen.insert(path.clone()) {
                return Err(FileError::Duplicate(path.to_string()));
            }
            out.push(SourceFile { path, content });
        }
        Ok(out)
    }
}

/// Reads a project folder into wire files (UTF-8 as text, anything else as base64), skipping
/// `node_modules`, `.git*`, and build output folders (`dist`, `build`, `out`, `.next`).
pub fn read_tree(root: &std::path::Path) -> std::io::Result<Vec<FileInput>> {
    const SKIP: &[&str] = &["node_modules", "dist", "build", "out", ".next", ".svelte-kit"];
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let ft = entry.file_type()?;
            if name.starts_with(".git") || (ft.is_dir() && SKIP.contains(&name.as_str())) {
                continue;
            }
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                let rel = entry
                    .path()
                    .strip_prefix(root)
                    .expect("entries are under the root")
                    .to_string_lossy()
                    .replace(std::path::MAIN_SEPARATOR, "/");
                let bytes = std::fs::read(entry.path())?;
                out.push(match String::from_utf8(bytes) {
                    Ok(text) => FileInput {
                        path: rel,
                        content: text,
                        encoding: FileEncoding::Utf8,
                    },
                    Err(e) => FileInput {
                        path: rel,
                        content: base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
                        encoding: FileEncoding::Base64,
                    },
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
