use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::path::{file_and_folder, PathError, RelativePath};

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileEncoding {
    #[default]
    Utf8,
    Base64,
}

impl<'de> Deserialize<'de> for FileEncoding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // By hand, for messages that name the field: serde's for an enum is "expected value".
        match String::deserialize(d)?.as_str() {
            "utf8" => Ok(Self::Utf8),
            "base64" => Ok(Self::Base64),
            other => Err(serde::de::Error::custom(format!(
                "encoding must be utf8 or base64, not {:?}",
                other.chars().take(20).collect::<String>()
            ))),
        }
    }
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
    #[error("files[{index}] ({path}) is {what}: sources are regular files only")]
    NotAFile {
        index: usize,
        path: String,
        what: String,
    },
    #[error("path {file} is a file, and a folder of {inner}: a tree cannot hold both")]
    FileAndFolder { file: String, inner: String },
}

/// One file of a project's source tree, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: RelativePath,
    pub content: Vec<u8>,
}

/// The wire shape of a file: `{path, content, encoding?}`. A client may also say what the
/// entry is (`type`, `mode`, a link `target`), as archive formats do: anything but a regular
/// file is refused (a link written into a workspace could point anywhere).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FileInput {
    pub path: String,
    pub content: String,
    #[serde(default)]
    pub encoding: FileEncoding,
    /// Only `"file"` is accepted.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A Unix mode (a number, or octal digits in a string): a regular file's only. Its
    /// permission bits are ignored: sources are written 0644.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<serde_json::Value>,
    /// A link's target: always refused.
    #[serde(
        default,
        alias = "linkTarget",
        alias = "symlink",
        skip_serializing_if = "Option::is_none"
    )]
    pub target: Option<serde_json::Value>,
}

impl FileInput {
    /// A UTF-8 file.
    pub fn text(path: impl Into<String>, content: impl Into<String>) -> Self {
        Self::new(path.into(), content.into(), FileEncoding::Utf8)
    }

    fn new(path: String, content: String, encoding: FileEncoding) -> Self {
        Self {
            path,
            content,
            encoding,
            kind: None,
            mode: None,
            target: None,
        }
    }

    /// What the entry is when it is not a regular file.
    fn not_a_file(&self) -> Option<String> {
        if let Some(kind) = self.kind.as_deref().filter(|k| *k != "file") {
            return Some(format!("of type {:?}", kind.chars().take(20).collect::<String>()));
        }
        if self.target.is_some() {
            return Some("a link (it has a target)".into());
        }
        let mode = self.mode.as_ref()?;
        let bits = match mode {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => u64::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
            _ => None,
        };
        match bits {
            None => Some("given a mode that is not a number".into()),
            Some(m) if m > 0o177_777 => Some(format!("given mode {m:o}, which is no file mode")),
            Some(m) => match m & 0o170_000 {
                0 | 0o100_000 => None,
                0o120_000 => Some(format!("a symbolic link (mode {m:o})")),
                0o040_000 => Some(format!("a directory (mode {m:o})")),
                _ => Some(format!("a special file (mode {m:o})")),
            },
        }
    }
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
            if let Some(what) = input.not_a_file() {
                return Err(FileError::NotAFile {
                    index,
                    path: path.to_string(),
                    what,
                });
            }
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
        if let Some((file, inner)) = file_and_folder(out.iter().map(|f| f.path.as_str())) {
            return Err(FileError::FileAndFolder {
                file: file.to_owned(),
                inner: inner.to_owned(),
            });
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
                    Ok(text) => FileInput::new(rel, text, FileEncoding::Utf8),
                    Err(e) => FileInput::new(
                        rel,
                        base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
                        FileEncoding::Base64,
                    ),
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
