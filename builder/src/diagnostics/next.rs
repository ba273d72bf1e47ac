//! Next.js's `Failed to compile.` block: each error a location line (`./app/page.tsx:2:9`, or
//! `./app/page.js` alone for a module that cannot be resolved) and its message
//! (`Type error: …`, `Module not found: Can't resolve 'x'`), then a code frame or its
//! documentation link (whose last part becomes the code), and perhaps an import trace.

use std::sync::LazyLock;

use regex::Regex;

use super::{number, Found, Sink};

static LOCATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<file>\./\S.*?)(?::(?P<line>\d+):(?P<col>\d+))?$").expect("a valid regex")
});

static DOCS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^https://nextjs\.org/docs/messages/(?P<code>[\w-]+)$").expect("a valid regex")
});

/// The lines that end the block.
fn is_end(line: &str) -> bool {
    line.starts_with("> Build failed")
        || line.starts_with("Next.js build worker exited")
        || line.contains("ELIFECYCLE")
}

pub(super) fn parse(lines: &[&str], sink: &mut Sink) {
    let Some(start) = lines.iter().position(|l| l.trim() == "Failed to compile.") else {
        return;
    };
    let mut i = start + 1;
    while i < lines.len() && !is_end(lines[i]) {
        let line = lines[i].trim_end();
        if line == "Import trace for requested module:" {
            // Its lines name the modules that led there, not errors.
            while i < lines.len() && !lines[i].trim().is_empty() {
                i += 1;
            }
            continue;
        }
        let Some(at) = LOCATION.captures(line) else {
            i += 1;
            continue;
        };
        let Some(message) = lines.get(i + 1).map(|l| l.trim()).filter(|l| !l.is_empty()) else {
            i += 1;
            continue;
        };
        // The documentation link, when one follows within the error's block.
        let mut j = i + 2;
        let mut code = message
            .starts_with("Type error:")
            .then(|| "type-error".to_owned());
        while j < lines.len() && !is_end(lines[j]) && !LOCATION.is_match(lines[j].trim_end()) {
            if let Some(d) = DOCS.captures(lines[j].trim()) {
                code = Some(d["code"].to_owned());
                break;
            }
            j += 1;
        }
        let message = message.strip_prefix("Type error: ").unwrap_or(message);
        sink.push(Found {
            tool: "next",
            file: Some(&line[..at.name("file").map_or(0, |m| m.end())]),
            line: at.name("line").and_then(|m| number(m.as_str())),
            column: at.name("col").and_then(|m| number(m.as_str())),
            code,
            message: message.to_owned(),
            ..Found::default()
        });
        i += 2;
    }
}

#[cfg(test)]
mod tests {
    use kiln_shared::domain::Step;

    use super::super::tests::{assert_clean, parse_as, rows};

    #[test]
    fn type_error() {
        let parsed = parse_as(Step::Build, include_str!("testdata/next-type-error.txt"), None);
        assert_eq!(
            rows(&parsed),
            [(
                "next",
                Some("app/page.tsx"),
                Some(2),
                Some(9),
                Some("type-error"),
                "Type 'string' is not assignable to type 'number'."
            )]
        );
        assert_clean(&parsed);
    }

    #[test]
    fn module_not_found() {
        let parsed = parse_as(
            Step::Build,
            include_str!("testdata/next-module-not-found.txt"),
            None,
        );
        assert_eq!(
            rows(&parsed),
            [(
                "next",
                Some("app/page.js"),
                None,
                None,
                Some("module-not-found"),
                "Module not found: Can't resolve 'lucide-react'"
            )]
        );
    }
}
