//! Vite, and the Rollup and esbuild inside it (or run alone): Vite's `error during build:`
//! block (an unresolved import, an esbuild syntax error, a Rollup error such as a missing
//! export, or any plugin's error with its `file:` line), and esbuild's own `✘ [ERROR]` form.

use std::sync::LazyLock;

use regex::Regex;

use super::{number, Found, Sink};

/// `[vite]: Rollup failed to resolve import "x" from "/abs/src/main.ts".` (Vite 6 and 7), and
/// the transform-time wording `[vite:import-analysis] Failed to resolve import "x" from
/// "src/main.ts". Does the file exist?`.
static UNRESOLVED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^(?:\[[\w:-]+\]:? )?(?:Rollup failed|Failed) to resolve import "(?P<spec>[^"]+)" from "(?P<file>[^"]+)"\.?"#)
        .expect("a valid regex")
});

/// esbuild's one-line form, in Vite's `Transform failed with N error(s):` and elsewhere:
/// `/abs/src/greet.ts:3:2: ERROR: Expected "]" but found "return"`.
static ESBUILD_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<file>\S.*?):(?P<line>\d+):(?P<col>\d+): (?P<sev>ERROR|WARNING): (?P<msg>.+)$")
        .expect("a valid regex")
});

/// esbuild run alone: `✘ [ERROR] Expected "]" but found "return"` (then, after a blank line,
/// the indented `src/greet.ts:3:2:`).
static ESBUILD_HEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[✘▲] \[(?P<sev>ERROR|WARNING)\] (?P<msg>.+?)(?: \[plugin [^\]]+\])?$")
        .expect("a valid regex")
});
static ESBUILD_AT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s+(?P<file>\S.*?):(?P<line>\d+):(?P<col>\d+):$").expect("a valid regex"));

/// Rollup's `src/main.ts (1:16): "farewell" is not exported by "src/greet.ts", imported by
/// "src/main.ts".` (and its other errors of that form).
static ROLLUP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\[[\w:-]+\] )?(?P<file>\S+?) \((?P<line>\d+):(?P<col>\d+)\): (?P<msg>.+)$")
        .expect("a valid regex")
});

/// The `file: /abs/src/main.ts:1:16` line of Vite's block.
static FILE_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^file: (?P<file>\S.*?)(?::(?P<line>\d+):(?P<col>\d+))?$").expect("a valid regex")
});

/// A plugin's name before its message: `[vite:esbuild] `, `[plugin vite:reporter] `.
static PLUGIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\[(?:plugin:? )?(?P<name>[^\]]+)\]:? (?P<msg>.*)$").expect("a valid regex")
});

/// A stack frame, the end of a block's message.
fn is_frame(line: &str) -> bool {
    line.trim_start().starts_with("at ") && line.starts_with("    ")
}

pub(super) fn parse(lines: &[&str], sink: &mut Sink) {
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "error during build:" {
            let start = i + 1;
            let mut end = start;
            while end < lines.len() && !is_frame(lines[end]) && !lines[end].contains("ELIFECYCLE") {
                end += 1;
            }
            block(&lines[start..end], sink);
            i = end;
        } else if let Some(head) = lines[i]
            .starts_with(['✘', '▲'])
            .then(|| ESBUILD_HEAD.captures(lines[i]))
            .flatten()
        {
            // esbuild alone: its location is the first indented `file:line:col:` line.
            let at = lines[i + 1..].iter().take(4).find_map(|l| ESBUILD_AT.captures(l));
            sink.push(Found {
                tool: "esbuild",
                warning: &head["sev"] == "WARNING",
                file: at.as_ref().and_then(|c| c.name("file")).map(|m| m.as_str()),
                line: at.as_ref().and_then(|c| number(&c["line"])),
                column: at.as_ref().and_then(|c| number(&c["col"])),
                code: None,
                message: head["msg"].to_owned(),
            });
            i += 1;
        } else {
            i += 1;
        }
    }
}

/// Vite's block after `error during build:`, up to its stack trace.
fn block(lines: &[&str], sink: &mut Sink) {
    let Some(first) = lines.iter().position(|l| !l.trim().is_empty()) else {
        return;
    };
    let lines = &lines[first..];
    let head = lines[0].trim_end();
    if super::svelte::HEAD.is_match(head) {
        // Svelte's compiler error, read by its own parser.
        return;
    }
    // esbuild's errors, one line each.
    let mut esbuild = false;
    for line in lines {
        if let Some(c) = ESBUILD_LINE.captures(line) {
            esbuild = true;
            sink.push(Found {
                tool: "esbuild",
                warning: &c["sev"] == "WARNING",
                file: Some(c.name("file").map_or("", |m| m.as_str())),
                line: number(&c["line"]),
                column: number(&c["col"]),
                code: None,
                message: c["msg"].to_owned(),
            });
        }
    }
    if esbuild {
        return;
    }
    if let Some(c) = UNRESOLVED.captures(head) {
        let message = head
            .split_once("]: ")
            .or_else(|| head.split_once("] "))
            .map_or(head, |(_, m)| m);
        sink.push(Found {
            tool: "vite",
            file: c.name("file").map(|m| m.as_str()),
            code: Some("UNRESOLVED_IMPORT".to_owned()),
            message: message.to_owned(),
            ..Found::default()
        });
        return;
    }
    let file_line = lines.iter().find_map(|l| FILE_LINE.captures(l));
    if let Some(c) = ROLLUP.captures(head) {
        let code = c["msg"]
            .contains(" is not exported by ")
            .then(|| "MISSING_EXPORT".to_owned());
        sink.push(Found {
            tool: "rollup",
            file: c.name("file").map(|m| m.as_str()),
            line: number(&c["line"]),
            column: number(&c["col"]),
            code,
            message: c["msg"].to_owned(),
            ..Found::default()
        });
        return;
    }
    // Any other plugin's error: its message, and the place its `file:` line gives.
    let (tool, message) = match PLUGIN.captures(head) {
        Some(c) => (plugin_tool(&c["name"]), c["msg"].to_owned()),
        None => ("vite", head.to_owned()),
    };
    let message = message
        .strip_prefix("RollupError: ")
        .or_else(|| message.strip_prefix("Error: "))
        .unwrap_or(&message)
        .to_owned();
    sink.push(Found {
        tool,
        file: file_line
            .as_ref()
            .and_then(|c| c.name("file"))
            .map(|m| m.as_str()),
        line: file_line
            .as_ref()
            .and_then(|c| c.name("line"))
            .and_then(|m| number(m.as_str())),
        column: file_line
            .as_ref()
            .and_then(|c| c.name("col"))
            .and_then(|m| number(m.as_str())),
        message,
        ..Found::default()
    });
}

/// The tool a Vite plugin's name stands for.
fn plugin_tool(name: &str) -> &'static str {
    let name = name.to_ascii_lowercase();
    if name.contains("svelte") {
        "sveltekit"
    } else if name.contains("astro") {
        "astro"
    } else if name.contains("nuxt") || name.contains("vue") {
        "nuxt"
    } else if name.contains("esbuild") {
        "esbuild"
    } else {
        "vite"
    }
}

#[cfg(test)]
mod tests {
    use kiln_shared::domain::Step;

    use super::super::tests::{assert_clean, parse_as, rows};

    const UNRESOLVED: &str = "Rollup failed to resolve import \"canvas-confetti\" from \"src/main.ts\".";

    #[test]
    fn vite_6_unresolved_import() {
        let parsed = parse_as(
            Step::Build,
            include_str!("testdata/vite-unresolved-import.txt"),
            None,
        );
        assert_eq!(
            rows(&parsed),
            [(
                "vite",
                Some("src/main.ts"),
                None,
                None,
                Some("UNRESOLVED_IMPORT"),
                UNRESOLVED
            )]
        );
        assert_clean(&parsed);
    }

    #[test]
    fn vite_7_unresolved_import() {
        let parsed = parse_as(
            Step::Build,
            include_str!("testdata/vite7-unresolved-import.txt"),
            None,
        );
        assert_eq!(
            rows(&parsed),
            [(
                "vite",
                Some("src/main.ts"),
                None,
                None,
                Some("UNRESOLVED_IMPORT"),
                UNRESOLVED
            )]
        );
    }

    #[test]
    fn esbuild_syntax_error_in_vite() {
        let want = [(
            "esbuild",
            Some("src/greet.ts"),
            Some(3),
            Some(2),
            None,
            "Expected \"]\" but found \"return\"",
        )];
        let parsed = parse_as(
            Step::Build,
            include_str!("testdata/vite-esbuild-syntax-error.txt"),
            None,
        );
        assert_eq!(rows(&parsed), want);
        assert_clean(&parsed);
        let coloured = include_str!("testdata/vite-esbuild-syntax-error-color.txt");
        assert_eq!(rows(&parse_as(Step::Build, coloured, None)), want);
        let alone = parse_as(
            Step::Build,
            include_str!("testdata/esbuild-syntax-error.txt"),
            None,
        );
        assert_eq!(rows(&alone), want);
    }

    #[test]
    fn rollup_missing_export() {
        let want = [(
            "rollup",
            Some("src/main.ts"),
            Some(1),
            Some(16),
            Some("MISSING_EXPORT"),
            "\"farewell\" is not exported by \"src/greet.ts\", imported by \"src/main.ts\".",
        )];
        let parsed = parse_as(
            Step::Build,
            include_str!("testdata/rollup-missing-export.txt"),
            None,
        );
        assert_eq!(rows(&parsed), want);
        let coloured = include_str!("testdata/rollup-missing-export-color.txt");
        assert_eq!(rows(&parse_as(Step::Build, coloured, None)), want);
    }
}
