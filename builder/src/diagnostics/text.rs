//! The output as the parsers read it (no ANSI colours, `\n` line endings), and paths: a file a
//! tool named made relative to the project, and builder paths taken out of any text.

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

/// CSI sequences (colours, cursor moves), OSC sequences (hyperlinks, titles) and the other
/// two-byte escapes.
static ANSI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]",
    )
    .expect("a valid regex")
});

/// An absolute path in a text (optionally a `file://` URL), up to a character no path of a
/// build has: whitespace, quotes, brackets, `:` (before a line number) or `,`.
static ABSOLUTE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?:file://)?/[^\s'"`()\[\]<>{},;:]+"#).expect("a valid regex"));

/// A builder's workspace in a path: its `kiln-builds` folder, or a `<build id>-<secret>` folder.
static WORKSPACE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"/kiln-builds(?:/|$)|/[0-9A-Za-z]{6,}-[0-9a-f]{20}(?:/|$)").expect("a valid regex")
});

/// `output` without ANSI escapes, with `\n` line endings (a lone `\r`, a progress line
/// rewritten in place, ends a line too).
pub fn clean(output: &str) -> String {
    let plain = ANSI.replace_all(output, "");
    plain.replace("\r\n", "\n").replace('\r', "\n")
}

/// The roots as strings without a trailing `/`, longest first (a root inside another is
/// removed before it).
fn roots_text(roots: &[&Path]) -> Vec<String> {
    let mut out: Vec<String> = roots
        .iter()
        .map(|r| r.to_string_lossy().trim_end_matches('/').to_owned())
        .filter(|r| !r.is_empty())
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.len()));
    out.dedup();
    out
}

/// The project-relative form of `file` as a tool printed it: a path under one of `roots` (or
/// a `file://` URL of one) loses the root, a relative path its `./`. `None` for a path outside
/// the project (or leaving it with `..`), or the project folder itself.
pub fn relative(file: &str, roots: &[&Path]) -> Option<String> {
    let file = file.trim();
    let file = file.strip_prefix("file://").unwrap_or(file);
    let rest = if file.starts_with('/') {
        let under = roots_text(roots).iter().find_map(|root| {
            file.strip_prefix(root.as_str())?
                .strip_prefix('/')
                .map(str::to_owned)
        });
        match under {
            Some(rest) => rest,
            None => builder_relative(file)?,
        }
    } else {
        file.to_owned()
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

/// The part of an absolute path inside a builder's workspace after its `project/` folder, when
/// no root named it (the sandbox's own view of it, say).
fn builder_relative(file: &str) -> Option<String> {
    let at = WORKSPACE.find(file)?;
    let after = &file[at.start()..];
    let project = after.find("/project/")?;
    Some(after[project + "/project/".len()..].to_owned())
}

/// `text` without the builder's paths: each of `roots` (as a path or a `file://` URL) is
/// removed where a path goes on under it and becomes `.` where it stands alone; any other path
/// into a builder's workspace becomes project-relative, or `<builder>`.
pub fn scrub(text: &str, roots: &[&Path]) -> String {
    let mut out = text.to_owned();
    for root in roots_text(roots) {
        for prefix in [format!("file://{root}/"), format!("{root}/")] {
            out = out.replace(&prefix, "");
        }
        out = out.replace(&format!("file://{root}"), ".").replace(&root, ".");
    }
    if !WORKSPACE.is_match(&out) {
        return out;
    }
    ABSOLUTE
        .replace_all(&out, |c: &regex::Captures| {
            let path = &c[0];
            let bare = path.strip_prefix("file://").unwrap_or(path);
            if !WORKSPACE.is_match(bare) {
                return path.to_owned();
            }
            builder_relative(bare).unwrap_or_else(|| "<builder>".to_owned())
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "/var/tmp/kiln-builds/01JTEST/work/01JTEST-s3cr3t/project";

    #[test]
    fn clean_strips_colours_and_line_endings() {
        let s = "\x1b[31merror\x1b[39m TS2322\r\nnext\rline\x1b]8;;https://x\x07link\x1b]8;;\x07";
        assert_eq!(clean(s), "error TS2322\nnext\nlinelink");
    }

    #[test]
    fn relative_paths() {
        let roots = [Path::new(ROOT), Path::new("/sandbox/project/")];
        assert_eq!(
            relative(&format!("{ROOT}/src/App.tsx"), &roots).as_deref(),
            Some("src/App.tsx")
        );
        assert_eq!(
            relative(&format!("file://{ROOT}/src/a.ts"), &roots).as_deref(),
            Some("src/a.ts")
        );
        assert_eq!(relative("/sandbox/project/x.js", &roots).as_deref(), Some("x.js"));
        assert_eq!(
            relative("./app/page.tsx", &roots).as_deref(),
            Some("app/page.tsx")
        );
        assert_eq!(relative("src/../src/a.ts", &roots).as_deref(), Some("src/a.ts"));
        assert_eq!(relative("../outside.ts", &roots), None);
        assert_eq!(relative("/usr/lib/node/x.js", &roots), None);
        assert_eq!(relative(ROOT, &roots), None);
        assert_eq!(relative("/sandbox/projectx/y.js", &roots), None);
        // Another view of a workspace no root named.
        let other = "/run/kiln-builds/01JX/work/01JX-0123456789abcdef0123/project/src/b.ts";
        assert_eq!(relative(other, &[]).as_deref(), Some("src/b.ts"));
    }

    #[test]
    fn scrub_removes_roots_and_leftover_workspace_paths() {
        let roots = [Path::new(ROOT)];
        let s = format!("> x@0.0.0 build {ROOT}\nat file://{ROOT}/src/main.ts:3:7 and {ROOT}/a.js");
        assert_eq!(
            scrub(&s, &roots),
            "> x@0.0.0 build .\nat src/main.ts:3:7 and a.js"
        );
        let s = "cd /var/tmp/kiln-builds/01JX/work/01JX-0123456789abcdef0123/home failed; \
                 see /var/tmp/kiln-builds/01JX/work/01JX-0123456789abcdef0123/project/src/x.ts:1:2";
        assert_eq!(scrub(s, &[]), "cd <builder> failed; see src/x.ts:1:2");
        assert_eq!(scrub("/usr/bin/node: /home/u/x", &[]), "/usr/bin/node: /home/u/x");
    }
}
