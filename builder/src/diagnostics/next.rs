//! Next.js's `Failed to compile.` block: each error a location line (`./app/page.tsx:2:9`, or
//! `./app/page.js` alone for a module that cannot be resolved) and its message
//! (`Type error: …`, `Module not found: Can't resolve 'x'`), then a code frame or its
//! documentation link (whose last part becomes the code), and perhaps an import trace. When
//! Next's ESLint run fails the build, a file's line is followed by ESLint's own lines
//! (`7:31  Error: React Hook "useState" is called conditionally. …  react-hooks/rules-of-hooks`).

use std::sync::LazyLock;

use regex::Regex;

use super::{number, Found, Sink};

static LOCATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<file>\./\S.*?)(?::(?P<line>\d+):(?P<col>\d+))?$").expect("a valid regex")
});

/// One of ESLint's lines under a file in Next's output: `line:col  Error|Warning: message  rule`.
static LINT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?P<line>\d+):(?P<col>\d+)\s+(?P<sev>Error|Warning): (?P<msg>.+?)(?:\s{2,}(?P<rule>[@\w/-]+))?$",
    )
    .expect("a valid regex")
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
        let file = &line[..at.name("file").map_or(0, |m| m.end())];
        if at.name("line").is_none() && lines.get(i + 1).is_some_and(|l| LINT.is_match(l.trim_end())) {
            i += 1;
            while let Some(c) = lines.get(i).and_then(|l| LINT.captures(l.trim_end())) {
                sink.push(Found {
                    tool: "eslint",
                    warning: &c["sev"] == "Warning",
                    file: Some(file),
                    line: number(&c["line"]),
                    column: number(&c["col"]),
                    code: c.name("rule").map(|m| m.as_str().to_owned()),
                    message: c["msg"].to_owned(),
                });
                i += 1;
            }
            continue;
        }
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
            file: Some(file),
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

    #[test]
    fn eslint_errors_of_next_build() {
        let parsed = parse_as(Step::Build, include_str!("testdata/next-lint-error.txt"), None);
        let page = Some("app/page.js");
        assert_eq!(
            rows(&parsed),
            [
                (
                    "eslint",
                    page,
                    Some(7),
                    Some(31),
                    Some("react-hooks/rules-of-hooks"),
                    "React Hook \"useState\" is called conditionally. React Hooks must be called in the exact same order in every component render. Did you accidentally call a React Hook after an early return?"
                ),
                (
                    "eslint",
                    page,
                    Some(12),
                    Some(7),
                    Some("@next/next/no-img-element"),
                    "Using `<img>` could result in slower LCP and higher bandwidth. Consider using `<Image />` from `next/image` or a custom image loader to automatically optimize images. This may incur additional usage or cost from your provider. See: https://nextjs.org/docs/messages/no-img-element"
                ),
                (
                    "eslint",
                    page,
                    Some(12),
                    Some(7),
                    Some("jsx-a11y/alt-text"),
                    "img elements must have an alt prop, either with meaningful text, or an empty string for decorative images."
                ),
            ]
        );
        assert_eq!(
            parsed.diagnostics[1].severity,
            kiln_shared::domain::Severity::Warning
        );
        assert_clean(&parsed);
    }
}
