//! What a build's checks run, decided from the installed project (nothing here runs them; the
//! `check` station does, in the sandbox, as the build): a typecheck with the project's own
//! TypeScript against its tsconfig.json, a lint with the project's own ESLint and config.
//!
//! - typecheck: `tsc --noEmit -p tsconfig.json`, or `tsc -b` when tsconfig.json is a solution
//!   of `references` (Vite's templates: the referenced configs say `noEmit` themselves);
//!   `--pretty false`, so each error is one `file(line,col): error TSxxxx: …` line.
//! - lint: `eslint . --max-warnings=0`, when the project has an ESLint config (flat
//!   `eslint.config.*` or a legacy `.eslintrc*`).
//!
//! A project without what a check needs (no tsconfig.json, no ESLint config, the tool not in
//! its dependencies) gets a warning diagnostic saying so, and the check is skipped: it is not
//! the project's code that failed.

use std::os::fd::AsFd;

use kiln_shared::domain::{Diagnostic, Severity, Step};

use crate::beneath::{self, BeneathError};

/// ESLint's configs, flat first.
const ESLINT_CONFIGS: &[&str] = &[
    "eslint.config.js",
    "eslint.config.mjs",
    "eslint.config.cjs",
    "eslint.config.ts",
    "eslint.config.mts",
    "eslint.config.cts",
    ".eslintrc.js",
    ".eslintrc.cjs",
    ".eslintrc.json",
    ".eslintrc.yml",
    ".eslintrc.yaml",
    ".eslintrc",
];

/// The largest tsconfig.json read.
const MAX_TSCONFIG_BYTES: u64 = 1024 * 1024;

/// One check, as the station runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// `pnpm exec <args>` in the project folder.
    Run { args: Vec<String> },
    /// Nothing to run: why, as a warning.
    Skip(Diagnostic),
}

fn skip(code: &str, message: String) -> Plan {
    let mut d = Diagnostic::kiln(Step::Check, code, message);
    d.severity = Severity::Warning;
    Plan::Skip(d)
}

/// Whether `rel` beneath the project is there (a link out counts as there: running the tool
/// then fails on it, in the sandbox).
fn exists(project: impl AsFd, rel: &str) -> bool {
    match beneath::stat_beneath(project, rel) {
        Ok(_) => true,
        Err(BeneathError::LinkOut { .. } | BeneathError::LinkLoop { .. }) => true,
        Err(_) => false,
    }
}

/// The typecheck of the project open at `project`.
pub fn typecheck(project: impl AsFd) -> Plan {
    let project = project.as_fd();
    let tsconfig = match beneath::read_beneath(project, "tsconfig.json", MAX_TSCONFIG_BYTES) {
        Ok(Some(text)) => text,
        Ok(None) => {
            return skip(
                "typecheck_no_tsconfig",
                "typecheck was asked for, and the project has no tsconfig.json: add one, or turn the typecheck off"
                    .into(),
            )
        }
        Err(e) => return skip("typecheck_no_tsconfig", format!("typecheck: {e}")),
    };
    if !exists(project, "node_modules/.bin/tsc") {
        return skip(
            "typecheck_no_typescript",
            "typecheck was asked for, and typescript is not in the project's dependencies: add it to devDependencies"
                .into(),
        );
    }
    let solution = String::from_utf8_lossy(&tsconfig).contains("\"references\"");
    let args: &[&str] = if solution {
        &["tsc", "-b", "--pretty", "false"]
    } else {
        &["tsc", "--noEmit", "--pretty", "false", "-p", "tsconfig.json"]
    };
    Plan::Run {
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    }
}

/// The lint of the project open at `project`.
pub fn lint(project: impl AsFd) -> Plan {
    let project = project.as_fd();
    if !ESLINT_CONFIGS.iter().any(|c| exists(project, c)) {
        return skip(
            "lint_no_config",
            "lint was asked for, and the project has no ESLint config (eslint.config.js or .eslintrc*): add one, or turn the lint off"
                .into(),
        );
    }
    if !exists(project, "node_modules/.bin/eslint") {
        return skip(
            "lint_no_eslint",
            "lint was asked for, and eslint is not in the project's dependencies: add it to devDependencies"
                .into(),
        );
    }
    Plan::Run {
        args: ["eslint", ".", "--max-warnings=0"].map(str::to_owned).to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let body = if *f == "tsconfig.json" && files.contains(&"refs") {
                "{\"files\": [], \"references\": [{\"path\": \"./tsconfig.app.json\"}]}"
            } else {
                "{}"
            };
            std::fs::write(path, body).unwrap();
        }
        dir
    }

    fn open(dir: &tempfile::TempDir) -> std::os::fd::OwnedFd {
        beneath::open_dir_path(dir.path()).unwrap()
    }

    fn code(plan: Plan) -> String {
        match plan {
            Plan::Skip(d) => {
                assert_eq!(d.severity, Severity::Warning);
                d.code.unwrap()
            }
            Plan::Run { args } => args.join(" "),
        }
    }

    #[test]
    fn the_typecheck_runs_tsc_against_the_projects_tsconfig() {
        let p = project(&["tsconfig.json", "node_modules/.bin/tsc"]);
        assert_eq!(
            code(typecheck(open(&p))),
            "tsc --noEmit --pretty false -p tsconfig.json"
        );
        let p = project(&["tsconfig.json", "refs", "node_modules/.bin/tsc"]);
        assert_eq!(code(typecheck(open(&p))), "tsc -b --pretty false");
        let p = project(&["node_modules/.bin/tsc"]);
        assert_eq!(code(typecheck(open(&p))), "typecheck_no_tsconfig");
        let p = project(&["tsconfig.json"]);
        assert_eq!(code(typecheck(open(&p))), "typecheck_no_typescript");
    }

    #[test]
    fn the_lint_runs_the_projects_eslint_with_its_config() {
        let p = project(&["eslint.config.js", "node_modules/.bin/eslint"]);
        assert_eq!(code(lint(open(&p))), "eslint . --max-warnings=0");
        let p = project(&[".eslintrc.json", "node_modules/.bin/eslint"]);
        assert_eq!(code(lint(open(&p))), "eslint . --max-warnings=0");
        let p = project(&["node_modules/.bin/eslint"]);
        assert_eq!(code(lint(open(&p))), "lint_no_config");
        let p = project(&["eslint.config.mjs"]);
        assert_eq!(code(lint(open(&p))), "lint_no_eslint");
    }
}
