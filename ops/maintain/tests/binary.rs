//! The `kiln-ops` binary's command line: `--help` lists every variable it reads with its
//! default, `--version` names it, `maintain` takes `--dry-run`, `--json` and `--metrics-file
//! PATH`, a wrong or missing argument is clap's usage error, and an unknown `KILN_*`
//! variable is a warning naming the closest known one.

use kiln_shared::config::Binary;

/// Runs the binary with `args` in an environment of `vars` alone: its exit code, stdout and
/// stderr.
fn run(args: &[&str], vars: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let ran = kiln_testkit::binary::run(env!("CARGO_BIN_EXE_kiln-ops"), args, vars);
    (ran.code, ran.stdout, ran.stderr)
}

#[test]
fn help_lists_every_variable_maintenance_reads_with_its_default() {
    for args in [&["--help"][..], &["maintain", "--help"]] {
        let (code, out, _) = run(args, &[]);
        assert_eq!(code, Some(0), "{args:?}");
        kiln_testkit::binary::assert_help_lists_variables(&out, Binary::Ops, 15);
        assert!(out.contains("\nMaintenance:\n"), "grouped by section:\n{out}");
        assert!(!out.contains("KILN_SANDBOX"), "a builder's variable:\n{out}");
    }
    let (_, out, _) = run(&["maintain", "--help"], &[]);
    for option in ["--dry-run", "--json", "--metrics-file <PATH>"] {
        assert!(out.contains(option), "{option}: {out}");
    }
}

#[test]
fn version_names_the_binary() {
    let (code, out, _) = run(&["--version"], &[]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), concat!("kiln-ops ", env!("CARGO_PKG_VERSION"), "\n"))
    );
}

#[test]
fn a_wrong_or_missing_argument_is_a_usage_error() {
    for args in [
        &[][..],
        &["maintain", "--metrics-file"],
        &["maintain", "--wait", "1"],
        &["gc"],
    ] {
        let (code, _, err) = run(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("--help"), "{args:?}: {err}");
    }
}

#[test]
fn an_unknown_variable_is_a_warning_naming_the_closest_known_one() {
    let (code, _, err) = run(&["maintain", "--dry-run"], &[("KILN_RETAIN_VERSION", "10")]);
    // The missing database URL stops it as a usage error (2), as it does kiln-api and kiln-builder.
    assert_eq!(code, Some(2));
    assert!(
        err.contains("unknown variable KILN_RETAIN_VERSION; did you mean KILN_RETAIN_VERSIONS?"),
        "{err}"
    );
    assert!(
        err.trim_end()
            .ends_with("kiln-ops: KILN_DATABASE_URL is required: the PostgreSQL URL"),
        "{err}"
    );
}
