//! Svelte's compiler errors through vite-plugin-svelte (a SvelteKit or Vite + Svelte build):
//! `[vite-plugin-svelte] [plugin vite-plugin-svelte] src/routes/+page.svelte (8:0):
//! src/routes/+page.svelte:8:0 <message>`, then its `https://svelte.dev/e/<code>` link. Svelte
//! counts columns from 0; a diagnostic's column is 1-based. And svelte-check's human output:
//! `/abs/src/routes/+page.svelte:3:9` then `Error: <message> (ts)` (or `Warn:`), its columns
//! from 1.

use std::sync::LazyLock;

use regex::Regex;

use super::{number, Found, Sink};

pub(super) static HEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:\[[^\]]*svelte[^\]]*\] )+(?P<file>\S+?) \((?P<line>\d+):(?P<col>\d+)\): (?:\S+?:\d+:\d+ )?(?P<msg>.+)$",
    )
    .expect("a valid regex")
});

/// svelte-check's place line, then its message line.
static CHECK_AT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<file>(?:/|\.{0,2}/?[\w@.+-]+/)\S*\.svelte|(?:/|\.{0,2}/?[\w@.+-]+/)\S*\.[jt]s):(?P<line>\d+):(?P<col>\d+)$")
        .expect("a valid regex")
});
static CHECK_MESSAGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<sev>Error|Warn): (?P<msg>.+?)(?: \((?P<source>ts|js|svelte|css)\))?$")
        .expect("a valid regex")
});

static DOCS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^https://svelte\.dev/e/(?P<code>\w+)$").expect("a valid regex"));

pub(super) fn parse(lines: &[&str], sink: &mut Sink) {
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim_end();
        if !line.starts_with(['/', '.', '[']) && !line.contains('/') {
            continue;
        }
        if let Some(at) = line
            .ends_with(|c: char| c.is_ascii_digit())
            .then(|| CHECK_AT.captures(line))
            .flatten()
        {
            check(&at, &lines[i + 1..], sink);
            continue;
        }
        let Some(c) = line.starts_with('[').then(|| HEAD.captures(line)).flatten() else {
            continue;
        };
        let code = lines[i + 1..]
            .iter()
            .take(3)
            .find_map(|l| DOCS.captures(l.trim()))
            .map(|d| d["code"].to_owned());
        sink.push(Found {
            tool: "sveltekit",
            file: c.name("file").map(|m| m.as_str()),
            line: number(&c["line"]),
            column: number(&c["col"]).map(|c| c + 1),
            code,
            message: c["msg"].to_owned(),
            ..Found::default()
        });
    }
}

/// svelte-check's diagnostic at `at`, its message (and perhaps a documentation link) next.
fn check(at: &regex::Captures, next: &[&str], sink: &mut Sink) {
    let Some(message) = next.first().and_then(|l| CHECK_MESSAGE.captures(l.trim_end())) else {
        return;
    };
    let mut text = message["msg"].to_owned();
    let mut code = None;
    // A Svelte warning's link comes on the next line, with the source after it.
    if let Some(link) = next.get(1).map(|l| l.trim_end()) {
        if let Some(d) = link.strip_suffix(" (svelte)").and_then(|l| DOCS.captures(l)) {
            code = Some(d["code"].to_owned());
        }
    }
    if let Some(source) = message.name("source") {
        text = format!("{text} ({})", source.as_str());
    }
    sink.push(Found {
        tool: "svelte-check",
        warning: &message["sev"] == "Warn",
        file: at.name("file").map(|m| m.as_str()),
        line: number(&at["line"]),
        column: number(&at["col"]),
        code,
        message: text,
    });
}

#[cfg(test)]
mod tests {
    use kiln_shared::domain::Step;

    use super::super::tests::{assert_clean, parse_as, rows};

    #[test]
    fn sveltekit_compile_error() {
        let parsed = parse_as(
            Step::Build,
            include_str!("testdata/sveltekit-compile-error.txt"),
            None,
        );
        assert_eq!(
            rows(&parsed),
            [(
                "sveltekit",
                Some("src/routes/+page.svelte"),
                Some(8),
                Some(1),
                Some("element_invalid_closing_tag"),
                "`</div>` attempted to close an element that was not open"
            )]
        );
        assert_clean(&parsed);
    }

    #[test]
    fn svelte_check() {
        let parsed = parse_as(
            Step::Build,
            include_str!("testdata/svelte-check-type-error.txt"),
            None,
        );
        let page = Some("src/routes/+page.svelte");
        assert_eq!(
            rows(&parsed),
            [
                (
                    "svelte-check",
                    page,
                    Some(3),
                    Some(9),
                    None,
                    "Type 'number' is not assignable to type 'string'. (ts)"
                ),
                (
                    "svelte-check",
                    page,
                    Some(3),
                    Some(25),
                    Some("state_referenced_locally"),
                    "This reference only captures the initial value of `count`. Did you mean to reference it inside a closure instead?"
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
