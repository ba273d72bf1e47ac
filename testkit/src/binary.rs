//! A Kiln binary run as an operator runs it: with arguments and an environment of its own
//! (nothing inherited), and what its `--help` must show: every variable it reads, with its
//! default or why it has none.

use kiln_shared::config::{self, Binary, Kind};

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `exe` with `args` in an environment of `vars` alone.
pub fn run(exe: &str, args: &[&str], vars: &[(&str, &str)]) -> Ran {
    let out = std::process::Command::new(exe)
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {exe}: {e}"));
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Panics unless `help` lists every variable `binary` reads (at least `at_least` of them) as
/// `NAME=default` (then the line's end or a note) or `NAME (required…` / `NAME (unset: …`.
pub fn assert_help_lists_variables(help: &str, binary: Binary, at_least: usize) {
    let read: Vec<_> = config::variables()
        .filter(|v| v.read_by(binary) && v.kind != Kind::Refused)
        .collect();
    assert!(read.len() >= at_least, "only {} variables", read.len());
    for v in read {
        let shown = match v.default_value() {
            Some(default) => format!("\n  {}={default}", v.name),
            None => format!("\n  {} (", v.name),
        };
        let rest = help.split_once(&shown).map(|(_, rest)| rest);
        assert!(
            rest.is_some_and(|r| v.default_value().is_none() || r.starts_with(['\n', ' '])),
            "{shown:?} missing from:\n{help}"
        );
    }
}
