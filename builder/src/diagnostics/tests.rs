//! Tests of the whole: captures of real tool runs (under `testdata/`, the scratch folder's path
//! replaced by a builder's), parsed as the builder would; and the helpers the tool modules'
//! own tests use.

use std::path::Path;
use std::time::{Duration, Instant};

use kiln_shared::domain::{Diagnostic, Severity, Step, MAX_DIAGNOSTICS};

use super::{parse, summary, Context, Parsed};

/// The project's folder in every capture.
pub(super) const ROOT: &str = "/var/tmp/kiln-builds/01JTEST/work/01JTEST-s3cr3t/project";

/// `output` parsed as step `step`'s, with the captures' root (and a second, the sandbox's view).
pub(super) fn parse_as(step: Step, output: &str, package_json: Option<&str>) -> Parsed {
    let roots = [Path::new(ROOT), Path::new("/project")];
    parse(
        &Context {
            step,
            roots: &roots,
            dir: "",
            package_json,
        },
        output,
    )
}

/// `(tool, file, line, column, code, message)` of a diagnostic, to compare in one assert.
pub(super) type Row<'a> = (
    &'a str,
    Option<&'a str>,
    Option<u32>,
    Option<u32>,
    Option<&'a str>,
    &'a str,
);

pub(super) fn rows(parsed: &Parsed) -> Vec<Row<'_>> {
    parsed
        .diagnostics
        .iter()
        .map(|d| {
            (
                d.tool.as_str(),
                d.file.as_deref(),
                d.line,
                d.column,
                d.code.as_deref(),
                d.message.as_str(),
            )
        })
        .collect()
}

/// No builder path, no ANSI code anywhere in what was parsed.
pub(super) fn assert_clean(parsed: &Parsed) {
    for d in &parsed.diagnostics {
        let all = format!("{d:?}");
        assert!(
            !all.contains("kiln-builds") && !all.contains("s3cr3t"),
            "builder path in {d:?}"
        );
        assert!(!all.contains('\u{1b}'), "ANSI code in {d:?}");
    }
}

#[test]
fn unknown_output_gives_nothing_and_the_summary_is_the_tail() {
    let out = include_str!("testdata/pnpm-install-ok.txt");
    let parsed = parse_as(Step::Install, out, None);
    assert_eq!(parsed, Parsed::default());
    let s = summary(&parsed.diagnostics, out);
    assert!(s.ends_with("Done in 5.9s using pnpm v10.34.9"), "{s}");
    assert!(s.lines().count() <= 15, "{s}");
    assert!(!s.contains("Progress: resolved 1,"), "{s}");
}

#[test]
fn the_summary_names_the_first_diagnostics_without_builder_paths() {
    let out = include_str!("testdata/eslint-stylish-parse-error.txt");
    let parsed = parse_as(Step::Check, out, None);
    let s = summary(&parsed.diagnostics, out);
    assert_eq!(
        s,
        "src/broken.js:1:7 Parsing error: Unexpected token :\n\
         src/main.js:3:7 'unused' is assigned a value but never used [no-unused-vars]\n\
         src/main.js:5:52 'naem' is not defined [no-undef]\n\
         src/main.js:4:1 Unexpected console statement [no-console]"
    );
}

#[test]
fn the_summary_tail_is_scrubbed_and_bounded() {
    // A failure no parser knows: a script's own last words, its path in them.
    let out = format!(
        "> x@0.0.0 build {ROOT}\n> ./build.sh\n\n\x1b[31mcannot write {ROOT}/out/page.html\x1b[39m\r\n{}\n ELIFECYCLE  Command failed with exit code 2.",
        "x".repeat(4000)
    );
    let parsed = parse_as(Step::Build, &out, None);
    assert!(parsed.diagnostics.is_empty());
    let s = summary(&parsed.diagnostics, &out);
    assert!(s.len() <= 1536, "{} bytes", s.len());
    assert!(s.ends_with("ELIFECYCLE  Command failed with exit code 2."), "{s}");
    let short = summary(&[], &out.replace(&"x".repeat(4000), "done"));
    assert!(short.contains("cannot write out/page.html"), "{short}");
    assert!(
        !short.contains("kiln-builds") && !short.contains('\u{1b}'),
        "{short}"
    );
}

#[test]
fn the_summary_says_how_many_more() {
    let d = |n: u32| Diagnostic {
        step: Step::Build,
        tool: "tsc".into(),
        severity: Severity::Error,
        file: Some("src/a.ts".into()),
        line: Some(n),
        column: Some(1),
        code: Some("TS2322".into()),
        message: "bad".into(),
    };
    let all: Vec<Diagnostic> = (1..=8).map(d).collect();
    let s = summary(&all, "");
    assert_eq!(s.lines().count(), 6, "{s}");
    assert!(s.starts_with("src/a.ts:1:1 bad [TS2322]\n"), "{s}");
    assert!(s.ends_with("(and 3 more)"), "{s}");
}

/// A failing log of `lines` lines: install noise, then many tsc and ESLint errors, from the
/// captures (what the benchmark parses too).
pub fn big_log(lines: usize) -> String {
    let parts = [
        include_str!("testdata/pnpm-install-ok.txt"),
        include_str!("testdata/tsc-build-plain.txt"),
        include_str!("testdata/tsc-pretty-color.txt"),
        include_str!("testdata/eslint-stylish.txt"),
        include_str!("testdata/vite-esbuild-syntax-error.txt"),
    ];
    let mut out = String::new();
    let mut n = 0;
    let mut round = 0u32;
    while n < lines {
        for p in parts {
            // Each round a different line, so the errors are distinct ones.
            let p = p
                .replace("(3,9)", &format!("({},9)", 3 + round))
                .replace("  3:7 ", &format!("  {}:7 ", 3 + round));
            for l in p.lines() {
                out.push_str(l);
                out.push('\n');
                n += 1;
            }
        }
        round += 1;
    }
    out
}

#[test]
fn a_big_log_is_parsed_in_bounded_time_and_cut_to_the_maximum() {
    let log = big_log(10_000);
    assert!(log.lines().count() >= 10_000);
    let started = Instant::now();
    let parsed = parse_as(Step::Build, &log, None);
    let s = summary(&parsed.diagnostics, &log);
    let took = started.elapsed();
    assert!(took < Duration::from_millis(500), "parse + summary took {took:?}");
    assert_eq!(parsed.diagnostics.len(), MAX_DIAGNOSTICS);
    assert!(parsed.total > MAX_DIAGNOSTICS, "{}", parsed.total);
    // Errors first: the ESLint warnings come after every error.
    let first_warning = parsed
        .diagnostics
        .iter()
        .position(|d| d.severity == Severity::Warning);
    assert!(first_warning.is_none_or(|w| parsed.diagnostics[w..]
        .iter()
        .all(|d| d.severity == Severity::Warning)));
    assert!(s.len() <= 1536);
    assert_clean(&parsed);
}

#[test]
fn duplicates_are_dropped() {
    let out = include_str!("testdata/tsc-build-plain.txt");
    let twice = format!("{out}\n{out}");
    let parsed = parse_as(Step::Build, &twice, None);
    assert_eq!(parsed.total, 1);
}

#[test]
fn the_step_is_the_one_given() {
    let parsed = parse_as(Step::Check, include_str!("testdata/tsc-build-plain.txt"), None);
    assert_eq!(parsed.diagnostics[0].step, Step::Check);
}

#[test]
fn a_long_message_is_cut_at_a_character_boundary() {
    let long = format!("src/a.ts(1,1): error TS2322: {}", "é".repeat(3000));
    let parsed = parse_as(Step::Build, &long, None);
    let message = &parsed.diagnostics[0].message;
    assert!(
        message.len() <= kiln_shared::domain::MAX_MESSAGE_BYTES,
        "{}",
        message.len()
    );
    assert!(message.ends_with('…'));
}

#[test]
fn a_vite_typescript_app_with_one_type_error_is_summed_up_in_one_line() {
    let out = include_str!("testdata/tsc-build-plain.txt");
    let parsed = parse_as(Step::Build, out, None);
    assert_eq!(
        summary(&parsed.diagnostics, out),
        "src/App.tsx:3:9 Type 'number' is not assignable to type 'string'. [TS2322]"
    );
}

/// A step run in an app folder below the top of the tree (settings.rootDir): the relative
/// paths its tools print are taken from that folder, absolute ones from the top, and both end
/// up relative to the top.
#[test]
fn paths_of_a_step_in_an_app_folder_are_relative_to_the_top() {
    let roots = [Path::new(ROOT)];
    let output = format!(
        "src/App.tsx(3,7): error TS2322: Type 'number' is not assignable to type 'string'.\n\
         {ROOT}/packages/lib/index.ts(1,14): error TS2322: Type 'number' is not assignable to type 'string'.\n\
         ../../packages/lib/other.ts(2,1): error TS2322: Type 'number' is not assignable to type 'string'.\n"
    );
    let parsed = parse(
        &Context {
            step: Step::Check,
            roots: &roots,
            dir: "apps/web",
            package_json: None,
        },
        &output,
    );
    let files: Vec<Option<&str>> = parsed.diagnostics.iter().map(|d| d.file.as_deref()).collect();
    assert_eq!(
        files,
        [
            Some("apps/web/src/App.tsx"),
            Some("packages/lib/index.ts"),
            Some("packages/lib/other.ts")
        ]
    );
}
