//! The `kiln-api` binary's command line: `--help` lists every variable it reads with its
//! default, `--version` names it, a wrong argument is clap's usage error, and an unknown
//! `KILN_*` variable is a warning naming the closest known one.

use kiln_shared::config::Binary;

/// Runs the binary with `args` in an environment of `vars` alone: its exit code, stdout and
/// stderr.
fn run(args: &[&str], vars: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let ran = kiln_testkit::binary::run(env!("CARGO_BIN_EXE_kiln-api"), args, vars);
    (ran.code, ran.stdout, ran.stderr)
}

#[test]
fn help_lists_every_variable_the_api_reads_with_its_default() {
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, Some(0));
    assert!(out.contains("Usage: kiln-api"), "{out}");
    kiln_testkit::binary::assert_help_lists_variables(&out, Binary::Api, 30);
    assert!(out.contains("\nLimits:\n"), "grouped by section:\n{out}");
    assert!(
        !out.contains("KILN_BUILD_CPU_SECS"),
        "a builder's variable:\n{out}"
    );
}

#[test]
fn version_names_the_binary() {
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), concat!("kiln-api ", env!("CARGO_PKG_VERSION"), "\n"))
    );
}

#[test]
fn a_wrong_argument_is_a_usage_error() {
    let (code, _, err) = run(&["--port", "80"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("unexpected argument '--port'"), "{err}");
}

#[test]
fn an_unknown_variable_is_a_warning_naming_the_closest_known_one() {
    let (code, _, err) = run(&[], &[("KILN_BUILD_TIMOUT_SECS", "5")]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("unknown variable KILN_BUILD_TIMOUT_SECS; did you mean KILN_BUILD_TIMEOUT_SECS?"),
        "{err}"
    );
    assert!(
        err.trim_end()
            .ends_with("kiln-api: KILN_DATABASE_URL is required: the PostgreSQL URL"),
        "{err}"
    );
}
