use std::fmt;

use serde::Serialize;

/// The longest path Kiln accepts, in bytes.
pub const MAX_PATH_BYTES: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path {0:?} is longer than 512 bytes")]
    TooLong(String),
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
    #[error("path {0:?} contains a backslash; use '/' as the separator")]
    Backslash(String),
    #[error("path {0:?} is absolute; paths must be relative to the project root")]
    Absolute(String),
    #[error("path {0:?} contains a '..', '.' or empty segment")]
    BadSegment(String),
    #[error("path {0:?} contains a control character")]
    Control(String),
}

/// A normalised path inside a project: relative, '/'-separated, no `.`/`..`/empty segments,
/// no NUL, no backslash, at most 512 bytes. Joining it onto a directory never leaves it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RelativePath(String);

impl RelativePath {
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        let shown = || raw.chars().take(100).collect::<String>();
        if raw.is_empty() {
            return Err(PathError::Empty);
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong(shown()));
        }
        if raw.contains('\0') {
            return Err(PathError::Nul(shown()));
        }
        if raw.contains('\\') {
            return Err(PathError::Backslash(shown()));
        }
        if raw.chars().any(char::is_control) {
            return Err(PathError::Control(shown()));
        }
        if raw.starts_with('/') || raw.as_bytes().get(1) == Some(&b':') {
            return Err(PathError::Absolute(shown()));
        }
        if raw.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return Err(PathError::BadSegment(shown()));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file name's extension, if any.
    pub fn extension(&self) -> Option<&str> {
        let name = self.0.rsplit('/').next().unwrap_or(&self.0);
        name.rsplit_once('.')
            .map(|(_, ext)| ext)
            .filter(|e| !e.is_empty())
    }
}

impl fmt::Display for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for RelativePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_relative_paths() {
        for ok in [
            "index.html",
            "src/App.tsx",
            ".gitignore",
            "a/b.c/d..e",
            "public/..hidden",
        ] {
            assert_eq!(RelativePath::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_every_escape() {
        let long = "a".repeat(513);
        type Check = fn(&PathError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, PathError::Empty)),
            ("../etc/passwd", |e| matches!(e, PathError::BadSegment(_))),
            ("src/../../x", |e| matches!(e, PathError::BadSegment(_))),
            ("./a", |e| matches!(e, PathError::BadSegment(_))),
            ("a//b", |e| matches!(e, PathError::BadSegment(_))),
            ("a/", |e| matches!(e, PathError::BadSegment(_))),
            ("/etc/passwd", |e| matches!(e, PathError::Absolute(_))),
            ("C:/x", |e| matches!(e, PathError::Absolute(_))),
            ("a\\b", |e| matches!(e, PathError::Backslash(_))),
            ("a\0b", |e| matches!(e, PathError::Nul(_))),
            ("a\nb", |e| matches!(e, PathError::Control(_))),
            (&long, |e| matches!(e, PathError::TooLong(_))),
        ];
        for (raw, check) in cases {
            let err = RelativePath::parse(raw).unwrap_err();
            assert!(check(&err), "{raw:?} gave {err:?}");
        }
    }

    #[test]
    fn extension_ignores_dotted_directories() {
        assert_eq!(RelativePath::parse("a.b/c").unwrap().extension(), None);
        assert_eq!(RelativePath::parse("a/c.js").unwrap().extension(), Some("js"));
        assert_eq!(RelativePath::parse("a/c.").unwrap().extension(), None);
    }
}
