//! Svelte's compiler errors through vite-plugin-svelte (a SvelteKit or Vite + Svelte build):
//! `[vite-plugin-svelte] [plugin vite-plugin-svelte] src/routes/+page.svelte (8:0):
//! src/routes/+page.svelte:8:0 <message>`, then its `https://svelte.dev/e/<code>` link. Svelte
//! counts columns from 0; a diagnostic's column is 1-based.

use std::sync::LazyLock;

use regex::Regex;

use super::{number, Found, Sink};

pub(super) static HEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:\[[^\]]*svelte[^\]]*\] )+(?P<file>\S+?) \((?P<line>\d+):(?P<col>\d+)\): (?:\S+?:\d+:\d+ )?(?P<msg>.+)$",
    )
    .expect("a valid regex")
});

static DOCS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^https://svelte\.dev/e/(?P<code>\w+)$").expect("a valid regex"));

pub(super) fn parse(lines: &[&str], sink: &mut Sink) {
    for (i, line) in lines.iter().enumerate() {
        let Some(c) = HEAD.captures(line) else {
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

#[cfg(test)]
mod tests {
    use kiln_shared::domain::Step;

    use super::super::tests::{assert_clean, parse_as, rows};

    #[test]
    fn sveltekit_compile_error() {
        let parsed = parse_as(Step::Build, include_str!("testdata/sveltekit-compile-error.txt"), None);
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
}
