use std::fmt;
use std::ops::Bound;

use serde::Serialize;

/// The longest path Kiln accepts, in bytes.
pub const MAX_PATH_BYTES: usize = 512;
/// The longest segment (file or folder name), in bytes: Linux's `NAME_MAX`.
pub const MAX_SEGMENT_BYTES: usize = 255;
/// The most segments a path may have (a file 32 folders deep).
pub const MAX_DEPTH: usize = 33;

/// Characters that look like, or are turned by some system into, a path's syntax: `.`, `/`,
/// `\` or `:` (Unicode compatibility normalisation, Windows' "best fit" code pages, IDNA).
/// A path holding one could mean something else once copied elsewhere (a zip extracted on
/// another system, a tool that normalises names), so Kiln refuses them: `‥/` is no `../` on
/// Linux, but nobody should have to check.
const LOOK_ALIKES: &[(char, &str, char)] = &[
    ('\u{2024}', "ONE DOT LEADER", '.'),
    ('\u{2025}', "TWO DOT LEADER", '.'),
    ('\u{2026}', "HORIZONTAL ELLIPSIS", '.'),
    ('\u{3002}', "IDEOGRAPHIC FULL STOP", '.'),
    ('\u{FE52}', "SMALL FULL STOP", '.'),
    ('\u{FF0E}', "FULLWIDTH FULL STOP", '.'),
    ('\u{FF61}', "HALFWIDTH IDEOGRAPHIC FULL STOP", '.'),
    ('\u{2044}', "FRACTION SLASH", '/'),
    ('\u{2215}', "DIVISION SLASH", '/'),
    (
        '\u{2571}',
        "BOX DRAWINGS LIGHT DIAGONAL UPPER RIGHT TO LOWER LEFT",
        '/',
    ),
    ('\u{27CB}', "MATHEMATICAL RISING DIAGONAL", '/'),
    ('\u{29F8}', "BIG SOLIDUS", '/'),
    ('\u{FF0F}', "FULLWIDTH SOLIDUS", '/'),
    ('\u{00A5}', "YEN SIGN", '\\'),
    ('\u{20A9}', "WON SIGN", '\\'),
    ('\u{2216}', "SET MINUS", '\\'),
    (
        '\u{2572}',
        "BOX DRAWINGS LIGHT DIAGONAL UPPER LEFT TO LOWER RIGHT",
        '\\',
    ),
    ('\u{27CD}', "MATHEMATICAL FALLING DIAGONAL", '\\'),
    ('\u{29F5}', "REVERSE SOLIDUS OPERATOR", '\\'),
    ('\u{29F9}', "BIG REVERSE SOLIDUS", '\\'),
    ('\u{FE68}', "SMALL REVERSE SOLIDUS", '\\'),
    ('\u{FF3C}', "FULLWIDTH REVERSE SOLIDUS", '\\'),
    ('\u{2236}', "RATIO", ':'),
    ('\u{FE55}', "SMALL COLON", ':'),
    ('\u{FF1A}', "FULLWIDTH COLON", ':'),
];

/// Invisible characters (Unicode's format class: zero-width, bidirectional controls, byte
/// order mark), with which a name shows as another name.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

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
    #[error("path {0:?} contains U+FFFD, which stands for bytes that were not UTF-8 (paths are UTF-8)")]
    NotUtf8(String),
    #[error("path {path:?} contains U+{code:04X} ({name}), a look-alike of {reads_as:?} that some systems turn into it")]
    LookAlike {
        path: String,
        code: u32,
        name: &'static str,
        reads_as: char,
    },
    #[error("path {path:?} contains the invisible character U+{code:04X}")]
    Invisible { path: String, code: u32 },
    #[error("path {path:?} contains {sequence}, a percent-encoded '.', '/', '\\', '%', NUL or non-ASCII byte; paths are not URL-encoded: send the characters themselves")]
    PercentEncoded { path: String, sequence: String },
    #[error("path {0:?} has a file or folder name longer than 255 bytes")]
    LongName(String),
    #[error("path {path:?} is {depth} levels deep; the limit is {limit}")]
    TooDeep {
        path: String,
        depth: usize,
        limit: usize,
    },
}

/// A normalised path inside a project: relative, '/'-separated, no `.`/`..`/empty segments,
/// no NUL, no backslash, no control or invisible character, no look-alike of `.`, `/`, `\\` or
/// `:`, names of at most 255 bytes, at most 512 bytes and [`MAX_DEPTH`] segments. Joining it
/// onto a directory never leaves it.
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
        if let Some(sequence) = percent_encoded_syntax(raw) {
            return Err(PathError::PercentEncoded {
                path: shown(),
                sequence,
            });
        }
        for c in raw.chars().filter(|c| !c.is_ascii()) {
            if c == char::REPLACEMENT_CHARACTER {
                return Err(PathError::NotUtf8(shown()));
            }
            if is_invisible(c) {
                return Err(PathError::Invisible {
                    path: shown(),
                    code: c as u32,
                });
            }
            if let Some(&(c, name, reads_as)) = LOOK_ALIKES.iter().find(|(l, ..)| *l == c) {
                return Err(PathError::LookAlike {
                    path: shown(),
                    code: c as u32,
                    name,
                    reads_as,
                });
            }
        }
        let mut depth = 0;
        for segment in raw.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(PathError::BadSegment(shown()));
            }
            if segment.len() > MAX_SEGMENT_BYTES {
                return Err(PathError::LongName(shown()));
            }
            depth += 1;
        }
        if depth > MAX_DEPTH {
            return Err(PathError::TooDeep {
                path: shown(),
                depth,
                limit: MAX_DEPTH,
            });
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

/// The first `%XX` in `raw` that decodes to path syntax (`.`, `/`, `\`), to `%` (a double
/// encoding), to NUL, or to a byte of a multi-byte (or overlong, `%c0%ae`) UTF-8 sequence. Such a
/// name is harmless on disk, but turns into a traversal for whatever decodes it later.
fn percent_encoded_syntax(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    bytes.windows(3).find_map(|w| {
        let hex = std::str::from_utf8(&w[1..]).ok()?;
        let byte = u8::from_str_radix(hex, 16).ok()?;
        let syntax = matches!(byte, b'.' | b'/' | b'\\' | b'%' | 0) || byte >= 0x80;
        (w[0] == b'%' && hex.bytes().all(|b| b.is_ascii_hexdigit()) && syntax)
            .then(|| String::from_utf8_lossy(w).into_owned())
    })
}

/// The first path of a tree that is also a folder of another (`a` and `a/b`), with that other
/// path: such a tree cannot be written to a disk. `paths` in any order; O(n log n).
pub fn file_and_folder<'a>(paths: impl IntoIterator<Item = &'a str>) -> Option<(&'a str, &'a str)> {
    let sorted: std::collections::BTreeSet<&str> = paths.into_iter().collect();
    sorted.iter().find_map(|file| {
        let folder = format!("{file}/");
        sorted
            .range::<str, _>((Bound::Included(folder.as_str()), Bound::Unbounded))
            .next()
            .filter(|inner| inner.starts_with(&folder))
            .map(|inner| (*file, *inner))
    })
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
            "src/é/日本語/ファイル.tsx",
            "a/.../b",
            "50%off.txt",
            "a%20b.txt",
            "100%",
        ] {
            assert_eq!(RelativePath::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_every_escape() {
        let long = "a".repeat(513);
        let deep = vec!["a"; 34].join("/");
        let long_name = format!("src/{}", "n".repeat(256));
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
            ("\u{2024}\u{2024}/etc/passwd", |e| {
                matches!(e, PathError::LookAlike { reads_as: '.', .. })
            }),
            ("\u{FF0E}\u{FF0E}/x", |e| {
                matches!(e, PathError::LookAlike { reads_as: '.', .. })
            }),
            ("..\u{2215}x", |e| {
                matches!(e, PathError::LookAlike { reads_as: '/', .. })
            }),
            ("a\u{FF3C}b", |e| {
                matches!(e, PathError::LookAlike { reads_as: '\\', .. })
            }),
            ("C\u{FF1A}/x", |e| {
                matches!(e, PathError::LookAlike { reads_as: ':', .. })
            }),
            ("evil\u{202E}gpj.js", |e| {
                matches!(e, PathError::Invisible { code: 0x202E, .. })
            }),
            ("a\u{200B}/b", |e| matches!(e, PathError::Invisible { .. })),
            ("a\u{FFFD}b", |e| matches!(e, PathError::NotUtf8(_))),
            (&deep, |e| matches!(e, PathError::TooDeep { depth: 34, .. })),
            (&long_name, |e| matches!(e, PathError::LongName(_))),
            ("%2e%2e/etc/passwd", |e| {
                matches!(e, PathError::PercentEncoded { .. })
            }),
            ("..%2Fetc", |e| matches!(e, PathError::PercentEncoded { .. })),
            ("%252e%252e/x", |e| matches!(e, PathError::PercentEncoded { .. })),
            ("%c0%ae%c0%ae/x", |e| {
                matches!(e, PathError::PercentEncoded { .. })
            }),
            ("a%5cb", |e| matches!(e, PathError::PercentEncoded { .. })),
            ("a%00", |e| matches!(e, PathError::PercentEncoded { .. })),
        ];
        for (raw, check) in cases {
            let err = RelativePath::parse(raw).unwrap_err();
            assert!(check(&err), "{raw:?} gave {err:?}");
        }
    }

    #[test]
    fn the_deepest_and_longest_names_allowed_are_accepted() {
        let deepest = vec!["a"; MAX_DEPTH].join("/");
        assert!(RelativePath::parse(&deepest).is_ok());
        let longest = format!("src/{}", "n".repeat(MAX_SEGMENT_BYTES));
        assert!(RelativePath::parse(&longest).is_ok());
    }

    #[test]
    fn a_file_that_is_also_a_folder_is_found() {
        assert_eq!(file_and_folder(["a/b", "a-b", "a"]), Some(("a", "a/b")));
        assert_eq!(file_and_folder(["src/x", "src/x.js/y"]), None);
        assert_eq!(file_and_folder(["a/b/c", "b", "a/b"]), Some(("a/b", "a/b/c")));
        assert_eq!(file_and_folder(["a", "ab", "a.b", "a-b/c"]), None);
    }

    #[test]
    fn extension_ignores_dotted_directories() {
        assert_eq!(RelativePath::parse("a.b/c").unwrap().extension(), None);
        assert_eq!(RelativePath::parse("a/c.js").unwrap().extension(), Some("js"));
        assert_eq!(RelativePath::parse("a/c.").unwrap().extension(), None);
    }
}
