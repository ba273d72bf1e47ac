//! TypeScript's compiler (`tsc`, and `vue-tsc`, which prints the same): the plain form
//! `src/App.tsx(3,7): error TS2322: …` (output that is not a terminal) and the pretty form
//! `src/App.tsx:3:7 - error TS2322: …` followed by its code frame (which is not the message).
//! A message's further lines (indented by two spaces) belong to it. A file is a path without
//! spaces or quotes, so a command line that prints such a line (pnpm's `> node -e "…"` echo of
//! a script) is not taken for one.

use std::sync::LazyLock;

use regex::Regex;

use super::{number, Found, Sink};

static PLAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^(?P<file>[^\s'"`>][^\s'"`]*?)\((?P<line>\d+),(?P<col>\d+)\): (?P<sev>error|warning) (?P<code>TS\d+): (?P<msg>.*)$"#)
        .expect("a valid regex")
});

static PRETTY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"^(?P<file>[^\s'"`>][^\s'"`]*?):(?P<line>\d+):(?P<col>\d+) - (?P<sev>error|warning) (?P<code>TS\d+): (?P<msg>.*)$"#,
    )
    .expect("a valid regex")
});

/// A diagnostic not tied to a file: `error TS5083: Cannot read file '…/tsconfig.json'.`
static GLOBAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?P<sev>error|warning) (?P<code>TS\d+): (?P<msg>.*)$").expect("a valid regex")
});

pub(super) fn parse(lines: &[&str], sink: &mut Sink) {
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        // Every form has `error TS` or `warning TS` (a cheap test before the patterns).
        if !line.contains(" TS") {
            i += 1;
            continue;
        }
        let caps = PLAIN
            .captures(line)
            .or_else(|| PRETTY.captures(line))
            .or_else(|| GLOBAL.captures(line));
        let Some(caps) = caps else {
            i += 1;
            continue;
        };
        let mut message = caps["msg"].to_owned();
        i += 1;
        // The message chain: the next lines indented by two spaces (the pretty form's code
        // frame comes after a blank line, and starts with a line number).
        while i < lines.len() && lines[i].starts_with("  ") && !lines[i].trim().is_empty() {
            message.push('\n');
            message.push_str(lines[i].trim_end());
            i += 1;
        }
        sink.push(Found {
            tool: "tsc",
            warning: &caps["sev"] == "warning",
            file: caps.name("file").map(|m| m.as_str()),
            line: caps.name("line").and_then(|m| number(m.as_str())),
            column: caps.name("col").and_then(|m| number(m.as_str())),
            code: Some(caps["code"].to_owned()),
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use kiln_shared::domain::Step;

    use super::super::tests::{assert_clean, parse_as, rows};

    const TS2322: &str = "Type 'number' is not assignable to type 'string'.";

    /// pnpm echoes the script it runs (`> node -e "…"`): a line of tsc's form inside it is not
    /// a diagnostic; the line the script printed is.
    #[test]
    fn a_command_line_quoting_a_diagnostic_is_not_one() {
        let output = "> p@ build /var/tmp/kiln-builds/01JTEST/work/01JTEST-s3cr3t/project\n\
                      > node -e \"console.error('src/App.tsx(3,1): error TS1005: boom'); process.exit(3)\"\n\
                      \n\
                      src/App.tsx(3,1): error TS1005: boom\n";
        let parsed = parse_as(Step::Build, output, None);
        assert_eq!(
            rows(&parsed),
            [(
                "tsc",
                Some("src/App.tsx"),
                Some(3),
                Some(1),
                Some("TS1005"),
                "boom"
            )]
        );
    }

    #[test]
    fn plain_form_of_tsc_b_in_a_vite_build() {
        let parsed = parse_as(Step::Build, include_str!("testdata/tsc-build-plain.txt"), None);
        assert_eq!(
            rows(&parsed),
            [(
                "tsc",
                Some("src/App.tsx"),
                Some(3),
                Some(9),
                Some("TS2322"),
                TS2322
            )]
        );
        assert_clean(&parsed);
    }

    #[test]
    fn plain_form_with_colours_forced() {
        let parsed = parse_as(Step::Build, include_str!("testdata/tsc-build-color.txt"), None);
        assert_eq!(
            rows(&parsed),
            [(
                "tsc",
                Some("src/App.tsx"),
                Some(3),
                Some(9),
                Some("TS2322"),
                TS2322
            )]
        );
    }

    #[test]
    fn pretty_form_without_its_code_frame() {
        let parsed = parse_as(Step::Check, include_str!("testdata/tsc-pretty-color.txt"), None);
        assert_eq!(
            rows(&parsed),
            [(
                "tsc",
                Some("src/App.tsx"),
                Some(3),
                Some(9),
                Some("TS2322"),
                TS2322
            )]
        );
    }

    #[test]
    fn message_chains_and_route_groups_in_both_forms() {
        let chain = "Type '(x: string) => void' is not assignable to type '(x: number) => void'.\n  \
                     Types of parameters 'x' and 'x' are incompatible.\n    \
                     Type 'number' is not assignable to type 'string'.";
        let want = [
            (
                "tsc",
                Some("src/(shop)/Card.tsx"),
                Some(7),
                Some(22),
                Some("TS2741"),
                "Property 'id' is missing in type '{ title: string; }' but required in type 'Props'.",
            ),
            (
                "tsc",
                Some("src/(shop)/handler.ts"),
                Some(1),
                Some(14),
                Some("TS2322"),
                chain,
            ),
            (
                "tsc",
                Some("src/App.tsx"),
                Some(3),
                Some(9),
                Some("TS2322"),
                TS2322,
            ),
        ];
        let plain = parse_as(Step::Build, include_str!("testdata/tsc-chain-plain.txt"), None);
        assert_eq!(rows(&plain), want);
        // The pretty form's related information ("'id' is declared here") is not a message.
        let pretty = parse_as(
            Step::Check,
            include_str!("testdata/tsc-chain-pretty-color.txt"),
            None,
        );
        assert_eq!(rows(&pretty), want);
    }

    #[test]
    fn vue_tsc_prints_the_same() {
        let parsed = parse_as(Step::Build, include_str!("testdata/vue-tsc-type-error.txt"), None);
        assert_eq!(
            rows(&parsed),
            [(
                "tsc",
                Some("src/App.vue"),
                Some(5),
                Some(7),
                Some("TS2322"),
                TS2322
            )]
        );
    }
}
