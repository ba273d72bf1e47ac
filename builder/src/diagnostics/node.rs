//! An uncaught error in a build script run by Node: the error's line (`Error: boom`,
//! `TypeError: …`) and its stack trace; the first frame inside the project (not under
//! `node_modules`, not Node's own `node:` modules) is where it happened. Without such a frame
//! (a syntax error), the `file:///…/build.js:5` line Node prints above its code frame is.

use std::sync::LazyLock;

use regex::Regex;

use super::{number, Found, Sink};

/// `Error: page / has no title`, `TypeError [ERR_X]: …`, `SyntaxError: …`.
static ERROR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<msg>(?:[A-Z]\w*)?Error(?: \[[A-Z0-9_]+\])?: .+)$").expect("a valid regex")
});

/// `    at render (file:///…/scripts/build.js:5:11)` or `    at file:///…/build.js:11:34`.
static FRAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s+at (?:.*? \()?(?P<file>[^()\s]+?):(?P<line>\d+):(?P<col>\d+)\)?$")
        .expect("a valid regex")
});

/// The line above Node's code frame: `file:///…/scripts/build.js:5`.
static ORIGIN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?P<file>(?:file://)?/\S+?):(?P<line>\d+)$").expect("a valid regex"));

pub(super) fn parse(lines: &[&str], sink: &mut Sink) {
    for (i, line) in lines.iter().enumerate() {
        let Some(error) = ERROR.captures(line.trim_end()) else {
            continue;
        };
        let frames: Vec<_> = lines[i + 1..].iter().map_while(|l| FRAME.captures(l)).collect();
        let origin = lines[i.saturating_sub(6)..i]
            .iter()
            .find_map(|l| ORIGIN.captures(l.trim_end()));
        if frames.is_empty() && origin.is_none() {
            continue;
        }
        let inside = |file: &str| {
            !file.starts_with("node:") && !file.contains("/node_modules/") && sink.relative(file).is_some()
        };
        let place = frames
            .iter()
            .find(|f| inside(&f["file"]))
            .map(|f| (f["file"].to_owned(), number(&f["line"]), number(&f["col"])))
            .or_else(|| {
                origin
                    .as_ref()
                    .filter(|o| inside(&o["file"]))
                    .map(|o| (o["file"].to_owned(), number(&o["line"]), None))
            });
        let Some((file, line, column)) = place else {
            continue;
        };
        sink.push(Found {
            tool: "node",
            file: Some(&file),
            line,
            column,
            message: error["msg"].to_owned(),
            ..Found::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use kiln_shared::domain::Step;

    use super::super::tests::{assert_clean, parse_as, rows};

    #[test]
    fn first_frame_inside_the_project() {
        let parsed = parse_as(Step::Build, include_str!("testdata/node-stack-trace.txt"), None);
        assert_eq!(
            rows(&parsed),
            [(
                "node",
                Some("scripts/build.js"),
                Some(5),
                Some(11),
                None,
                "Error: page / has no title"
            )]
        );
        assert_clean(&parsed);
    }

    #[test]
    fn a_trace_only_through_node_modules_is_no_diagnostic() {
        // Vite's own frames after an error no parser claimed.
        let out = include_str!("testdata/vite-unresolved-import.txt").replace("error during build:", "");
        let parsed = parse_as(Step::Build, &out, None);
        assert!(parsed.diagnostics.iter().all(|d| d.tool != "node"), "{parsed:?}");
    }
}
