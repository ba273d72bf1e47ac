//! Nuxt's `Nuxt build error:` line (its framed log: `■  Nuxt build error: RollupError:
//! [vite:vue] [plugin vite:vue] pages/index.vue?macro=true (8:5): Element is missing end
//! tag.`), and the `file:` line after it when the error names no place itself.

use std::sync::LazyLock;

use regex::Regex;

use super::{number, Found, Sink};

static ERROR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[■│┃]\s+)?(?:ERROR\s+)?Nuxt build error: (?:\w*Error: )?(?P<rest>.+)$")
        .expect("a valid regex")
});

/// `[vite:vue] [plugin vite:vue] pages/index.vue?macro=true (8:5): message`.
static PLACED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\[[^\]]+\] )*(?P<file>[^\s?]+)(?:\?\S*)? \((?P<line>\d+):(?P<col>\d+)\): (?P<msg>.+)$")
        .expect("a valid regex")
});

static FILE_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[│┃]\s+)?file: (?P<file>[^\s?]+?)(?::(?P<line>\d+):(?P<col>\d+))?(?:\?\S*)?(?: \(.*\))?$",
    )
    .expect("a valid regex")
});

/// A plugin's name before a message: `[vite:vue] `, `[plugin vite:vue] `.
static PLUGINS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(?:\[[^\]]+\] )+").expect("a valid regex"));

pub(super) fn parse(lines: &[&str], sink: &mut Sink) {
    for (i, line) in lines.iter().enumerate() {
        if !line.contains("Nuxt build error") {
            continue;
        }
        let Some(c) = ERROR.captures(line.trim_end()) else {
            continue;
        };
        let rest = c["rest"].trim();
        if let Some(p) = PLACED.captures(rest) {
            sink.push(Found {
                tool: "nuxt",
                file: p.name("file").map(|m| m.as_str()),
                line: number(&p["line"]),
                column: number(&p["col"]),
                message: p["msg"].to_owned(),
                ..Found::default()
            });
            continue;
        }
        let place = lines[i + 1..]
            .iter()
            .take(3)
            .find_map(|l| FILE_LINE.captures(l.trim_end()));
        sink.push(Found {
            tool: "nuxt",
            file: place.as_ref().and_then(|p| p.name("file")).map(|m| m.as_str()),
            line: place
                .as_ref()
                .and_then(|p| p.name("line"))
                .and_then(|m| number(m.as_str())),
            column: place
                .as_ref()
                .and_then(|p| p.name("col"))
                .and_then(|m| number(m.as_str())),
            message: PLUGINS.replace(rest, "").into_owned(),
            ..Found::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use kiln_shared::domain::Step;

    use super::super::tests::{assert_clean, parse_as, rows};

    #[test]
    fn vue_template_error_in_nuxt_generate() {
        let parsed = parse_as(Step::Build, include_str!("testdata/nuxt-compile-error.txt"), None);
        assert_eq!(
            rows(&parsed),
            [(
                "nuxt",
                Some("pages/index.vue"),
                Some(8),
                Some(5),
                None,
                "Element is missing end tag."
            )]
        );
        assert_clean(&parsed);
    }
}
