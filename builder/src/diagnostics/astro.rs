//! Astro's `[ERROR]` lines: `12:00:00 [ERROR] [vite] ✗ Build failed in 1.19s` (or
//! `[ERROR] [SomeAstroError] message`), the message on the next lines, then the place under
//! `  Location:` (or a `file:` line), up to `  Hint:` or `  Stack trace:`.

use std::sync::LazyLock;

use regex::Regex;

use super::{number, Found, Sink};

static HEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\d\d:\d\d:\d\d )?\[ERROR\] (?:\[(?P<name>[^\]]+)\] )?(?P<rest>.*)$")
        .expect("a valid regex")
});

static PLACE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:file: )?(?P<file>(?:file://)?/\S*?|\S+\.\w+)(?::(?P<line>\d+)(?::(?P<col>\d+))?)?$")
        .expect("a valid regex")
});

pub(super) fn parse(lines: &[&str], sink: &mut Sink) {
    let mut i = 0;
    while i < lines.len() {
        let Some(head) = lines[i]
            .contains("[ERROR]")
            .then(|| HEAD.captures(lines[i]))
            .flatten()
        else {
            i += 1;
            continue;
        };
        let mut message = Vec::new();
        let rest = head["rest"].trim();
        if !rest.is_empty() && !rest.starts_with("✗ Build failed") {
            message.push(rest.to_owned());
        }
        let name = head.name("name").map(|m| m.as_str());
        let (mut file, mut line, mut column) = (None, None, None);
        i += 1;
        while i < lines.len() {
            let l = lines[i].trim_end();
            let t = l.trim();
            if t == "Stack trace:" || t.starts_with("Hint:") || l.contains("ELIFECYCLE") || HEAD.is_match(l) {
                break;
            }
            if t == "Location:" {
                i += 1;
                continue;
            }
            if let Some(p) = PLACE
                .captures(t)
                .filter(|_| file.is_none() && (t.starts_with("file: ") || t.starts_with('/')))
            {
                file = p.name("file").map(|m| m.as_str().to_owned());
                line = p.name("line").and_then(|m| number(m.as_str()));
                column = p.name("col").and_then(|m| number(m.as_str()));
            } else if !t.is_empty() && file.is_none() {
                message.push(t.to_owned());
            }
            i += 1;
        }
        if message.is_empty() {
            continue;
        }
        let code = name
            .filter(|n| !matches!(*n, "vite" | "build" | "astro"))
            .map(str::to_owned);
        sink.push(Found {
            tool: "astro",
            file: file.as_deref(),
            line,
            column,
            code,
            message: message.join("\n"),
            ..Found::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use kiln_shared::domain::Step;

    use super::super::tests::{assert_clean, parse_as, rows};

    #[test]
    fn syntax_error_in_the_frontmatter() {
        let parsed = parse_as(
            Step::Build,
            include_str!("testdata/astro-frontmatter-error.txt"),
            None,
        );
        assert_eq!(
            rows(&parsed),
            [(
                "astro",
                Some("src/pages/index.astro"),
                Some(3),
                Some(15),
                None,
                "Unexpected \";\""
            )]
        );
        assert_clean(&parsed);
    }

    #[test]
    fn syntax_error_in_an_expression_at_the_place_astro_names() {
        let parsed = parse_as(
            Step::Build,
            include_str!("testdata/astro-expression-error.txt"),
            None,
        );
        assert_eq!(
            rows(&parsed),
            [(
                "astro",
                Some("src/pages/index.astro"),
                Some(28),
                Some(141),
                None,
                "Expected \")\" but found \"}\""
            )]
        );
    }

    #[test]
    fn missing_import() {
        let parsed = parse_as(
            Step::Build,
            include_str!("testdata/astro-missing-import.txt"),
            None,
        );
        assert_eq!(
            rows(&parsed),
            [(
                "astro",
                Some("src/pages/index.astro"),
                None,
                None,
                None,
                "Could not resolve \"../components/Card.astro\" from \"src/pages/index.astro\""
            )]
        );
    }
}
