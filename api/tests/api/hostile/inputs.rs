//! Hostile inputs more than one table uses: one-file bodies, deep nesting, and paths that try
//! to leave the project in every spelling.

use serde_json::{json, Value};

pub(super) fn one(path: &str) -> Value {
    json!({ "userId": "u", "projectId": "p", "files": [{ "path": path, "content": "x" }] })
}

pub(super) fn file(entry: Value) -> Value {
    json!({ "userId": "u", "projectId": "p", "files": [entry] })
}

/// `[[[…]]]` (or `{"a":{"a":…}}`) `depth` deep.
pub(super) fn nested(depth: usize, object: bool) -> String {
    if object {
        format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
    } else {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }
}

/// Paths that try to leave the project, in every spelling: each is refused wherever a path is
/// taken (`files`, `deleted`, the generator contract's `templateFiles` and `files`).
pub(super) fn hostile_paths() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("dot-dot", "../../etc/passwd".into(), "contains a '..'"),
        ("inner dot-dot", "src/../../x".into(), "contains a '..'"),
        ("dot segment", "./x".into(), "'..', '.' or empty segment"),
        ("empty segment", "a//b".into(), "'..', '.' or empty segment"),
        ("trailing slash", "a/".into(), "'..', '.' or empty segment"),
        ("absolute", "/etc/passwd".into(), "is absolute"),
        ("drive letter", "C:/Windows/win.ini".into(), "is absolute"),
        ("backslash", "src\\app.js".into(), "backslash"),
        ("backslash dot-dot", "..\\..\\x".into(), "backslash"),
        ("UNC", "\\\\server\\share".into(), "backslash"),
        ("nul", "a\u{0}b".into(), "NUL"),
        ("nul extension", "index.html\u{0}.png".into(), "NUL"),
        ("control", "a\u{1}b".into(), "control character"),
        ("newline", "a\nb".into(), "control character"),
        ("C1 control", "a\u{85}b".into(), "control character"),
        ("DEL", "a\u{7f}b".into(), "control character"),
        ("%2e%2e", "%2e%2e/%2e%2e/etc/passwd".into(), "percent-encoded"),
        ("%2E%2E%2F", "%2E%2E%2Fetc%2Fpasswd".into(), "percent-encoded"),
        ("..%2f", "..%2f..%2fetc".into(), "percent-encoded"),
        ("%5c", "..%5c..%5cwin.ini".into(), "percent-encoded"),
        ("double-encoded", "%252e%252e/x".into(), "percent-encoded"),
        (
            "overlong %c0%ae",
            "%c0%ae%c0%ae/%c0%afetc".into(),
            "percent-encoded",
        ),
        ("%00", "a%00.png".into(), "percent-encoded"),
        (
            "one dot leader",
            "\u{2024}\u{2024}/etc/passwd".into(),
            "U+2024 (ONE DOT LEADER)",
        ),
        ("two dot leader", "\u{2025}/x".into(), "U+2025 (TWO DOT LEADER)"),
        (
            "fullwidth full stop",
            "\u{FF0E}\u{FF0E}/\u{FF0E}\u{FF0E}/x".into(),
            "U+FF0E (FULLWIDTH FULL STOP)",
        ),
        ("small full stop", "\u{FE52}\u{FE52}/x".into(), "U+FE52"),
        ("ideographic full stop", "\u{3002}\u{3002}/x".into(), "U+3002"),
        (
            "division slash",
            "..\u{2215}..\u{2215}etc".into(),
            "U+2215 (DIVISION SLASH)",
        ),
        ("fraction slash", "..\u{2044}x".into(), "U+2044 (FRACTION SLASH)"),
        (
            "fullwidth solidus",
            "\u{FF0F}etc\u{FF0F}passwd".into(),
            "U+FF0F (FULLWIDTH SOLIDUS)",
        ),
        ("fullwidth reverse solidus", "..\u{FF3C}x".into(), "U+FF3C"),
        ("set minus", "..\u{2216}x".into(), "U+2216 (SET MINUS)"),
        (
            "yen sign (cp932 backslash)",
            "..\u{A5}..\u{A5}x".into(),
            "U+00A5 (YEN SIGN)",
        ),
        (
            "fullwidth colon",
            "C\u{FF1A}/x".into(),
            "U+FF1A (FULLWIDTH COLON)",
        ),
        (
            "right-to-left override",
            "evil\u{202E}sj.png".into(),
            "invisible character U+202E",
        ),
        (
            "zero-width space",
            "index\u{200B}.html".into(),
            "invisible character U+200B",
        ),
        (
            "byte order mark",
            "\u{FEFF}index.html".into(),
            "invisible character U+FEFF",
        ),
        (
            "34 levels deep",
            vec!["a"; 34].join("/"),
            "34 levels deep; the limit is 33",
        ),
        ("256 levels deep", vec!["a"; 256].join("/"), "256 levels deep"),
        (
            "long name",
            format!("src/{}", "n".repeat(256)),
            "longer than 255 bytes",
        ),
        ("long path", "a/".repeat(300), "longer than 512 bytes"),
        ("empty path", String::new(), "path is empty"),
    ]
}
