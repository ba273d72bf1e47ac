//! Running one untrusted step of a build in a folder of its tree, and what its failure says:
//! the command as a person would type it, and the diagnostics its output holds, with paths
//! relative to the top of the tree.

use std::path::Path;

use kiln_shared::domain::Step;

use super::Stations;
use crate::diagnostics;
use crate::job::failure::{fail, run_failure, Failure};
use crate::process::{self, Invocation, StepEnv};

/// Lines of a failing step's own output an error summary may end with.
const ERROR_TAIL_LINES: usize = 15;

impl Stations<'_> {
    /// Runs one untrusted step in the app folder; a non-zero exit fails the build at `step`
    /// with what its own output says (diagnostics, else its last lines).
    pub(super) async fn run_step(
        &self,
        step: Step,
        env: &StepEnv,
        program: &str,
        args: &[&str],
    ) -> Result<(), Failure> {
        self.run_in(step, env, &self.app, program, args, None).await
    }

    /// [`Self::run_step`] in folder `cwd` of the tree; `shown`: the command as its failure
    /// names it (else the program and its arguments up to the first option).
    pub(super) async fn run_in(
        &self,
        step: Step,
        env: &StepEnv,
        cwd: &Path,
        program: &str,
        args: &[&str],
        shown: Option<&str>,
    ) -> Result<(), Failure> {
        let invocation = Invocation {
            program,
            args,
            cwd,
            stdin: None,
        };
        let mark = self.log.mark();
        let status = process::run(env, invocation, self.deadline, self.log)
            .await
            .map_err(|e| run_failure(step, e))?;
        if status.success() {
            return Ok(());
        }
        let what = match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => "was killed by a signal".to_owned(),
        };
        // The command as a person would type it: its options name the builder's folders.
        let command = match shown {
            Some(shown) => shown.to_owned(),
            None => std::iter::once(program)
                .chain(args.iter().copied().take_while(|a| !a.starts_with('-')))
                .collect::<Vec<&str>>()
                .join(" "),
        };
        let output = self.log.since(mark);
        let roots = [self.project.as_path(), self.ws.root()];
        let dir = cwd
            .strip_prefix(&self.project)
            .ok()
            .and_then(Path::to_str)
            .unwrap_or("");
        let cx = diagnostics::Context {
            step,
            roots: &roots,
            dir,
            // package.json's lines, for a step run beside it.
            package_json: (cwd == self.app)
                .then(|| self.package_json.get().map(String::as_str))
                .flatten(),
        };
        let parsed = diagnostics::parse(&cx, &output);
        // Kiln's own `$ command` lines are not the step's output.
        let tail: Vec<&str> = output.lines().filter(|l| !l.starts_with("$ ")).collect();
        let tail = tail[tail.len().saturating_sub(ERROR_TAIL_LINES)..].join("\n");
        let summary = diagnostics::summary(&parsed.diagnostics, &tail);
        Err(fail(step, format!("`{command}` {what}:\n{summary}"))
            .code("command_failed")
            .with(parsed))
    }
}
