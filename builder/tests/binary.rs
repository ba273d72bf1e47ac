//! The `kiln-builder` binary's command line: `--help` lists every variable it reads with its
//! default, `--version` names it, `maintain` takes `--json` and `--wait SECS`, a wrong
//! argument is clap's usage error, and an unknown `KILN_*` variable is a warning naming the
//! closest known one.

use kiln_shared::config::Binary;

/// Runs the binary with `args` in an environment of `vars` alone: its exit code, stdout and
/// stderr.
fn run(args: &[&str], vars: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let ran = kiln_testkit::binary::run(env!("CARGO_BIN_EXE_kiln-builder"), args, vars);
    (ran.code, ran.stdout, ran.stderr)
}

#[test]
fn help_lists_every_variable_the_builder_reads_with_its_default() {
    for args in [&["--help"][..], &["maintain", "--help"]] {
        let (code, out, _) = run(args, &[]);
        assert_eq!(code, Some(0), "{args:?}");
        kiln_testkit::binary::assert_help_lists_variables(&out, Binary::Builder, 40);
        assert!(out.contains("\nSandbox:\n"), "grouped by section:\n{out}");
        assert!(!out.contains("KILN_RATE_LIMIT_PER_IP"), "an API variable:\n{out}");
    }
    let (_, out, _) = run(&["--help"], &[]);
    assert!(out.contains("\n  maintain "), "{out}");
    let (_, out, _) = run(&["maintain", "--help"], &[]);
    assert!(out.contains("--wait <SECS>") && out.contains("--json"), "{out}");
}

#[test]
fn version_names_the_binary() {
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), concat!("kiln-builder ", env!("CARGO_PKG_VERSION"), "\n"))
    );
}

#[test]
fn a_wrong_argument_is_a_usage_error() {
    for args in [
        &["maintain", "--wait", "soon"][..],
        &["maintain", "--wait"],
        &["maintain", "--dry-run"],
        &["--json"],
        &["upkeep"],
    ] {
        let (code, _, err) = run(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains("--help"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn an_unknown_variable_is_a_warning_naming_the_closest_known_one() {
    let (code, _, err) = run(&["maintain", "--wait", "1"], &[("KILN_WORKDIR", "/tmp")]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("unknown variable KILN_WORKDIR; did you mean KILN_WORK_DIR?"),
        "{err}"
    );
    assert!(
        err.trim_end()
            .ends_with("kiln-builder: KILN_DATABASE_URL is required: the PostgreSQL URL"),
        "{err}"
    );
}
