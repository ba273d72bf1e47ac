//! Why an attempt failed, and whose fault it was: the project's (the build fails at once) or
//! the farm's (the attempt is tried again). Every station's error becomes a [`Failure`] here,
//! with Kiln's code for it and what the tools said ([`Diagnostic`]s).

use std::path::Path;

use kiln_shared::domain::{Diagnostic, Step};
use kiln_shared::store::StoreError;

use crate::beneath::BeneathError;
use crate::diagnostics;
use crate::process::RunError;
use crate::publish::PublishError;
use crate::sandbox::watch::Breach;

/// Why an attempt failed: the station, a message for the user, and whose fault it was.
#[derive(Debug)]
pub struct Failure {
    pub step: Step,
    /// A short summary: what the tools said first, or the end of the failing step's output.
    pub message: String,
    pub cause: Cause,
    /// Kiln's code for it (`command_failed`, `timeout`, `needs_server`…), the one diagnostic
    /// recorded when the tools said nothing that could be read.
    pub code: &'static str,
    /// What the tools said (at most [`kiln_shared::domain::MAX_DIAGNOSTICS`]).
    pub diagnostics: Vec<Diagnostic>,
    /// How many they said in all.
    pub diagnostics_total: usize,
    /// The framework package.json names, when the build got that far.
    pub framework: Option<&'static str>,
}

/// Whose fault a failure is, which decides what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The project's (a script that fails, no output, over a limit): the build fails at once;
    /// running it again would fail again.
    User,
    /// The farm's (the artifact store unreachable, a full disk, a tool that cannot start): the
    /// attempt goes back to the queue after a backoff, up to `KILN_MAX_ATTEMPTS` attempts.
    Infra,
}

impl Failure {
    /// The same failure under Kiln's code `code`.
    pub(super) fn code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    /// The same failure carrying what the tools said.
    pub(super) fn with(mut self, parsed: diagnostics::Parsed) -> Self {
        self.diagnostics_total = parsed.total.max(parsed.diagnostics.len());
        self.diagnostics = parsed.diagnostics;
        self
    }

    /// The same failure with every path of the builder's taken out of what it says: the
    /// project's folders (`roots`) made relative, the farm's own (`farm`: a name for each, such
    /// as the pnpm store) replaced by their names.
    pub(super) fn scrubbed(mut self, roots: &[&Path], farm: &[(&Path, &str)]) -> Self {
        self.message = scrub(&self.message, roots, farm);
        for d in &mut self.diagnostics {
            d.message = scrub(&d.message, roots, farm);
        }
        self
    }
}

/// `text` without the builder's paths: the project's folders (`roots`) made relative, the
/// farm's own (`farm`: a name for each, such as the pnpm store) replaced by their names.
pub(super) fn scrub(text: &str, roots: &[&Path], farm: &[(&Path, &str)]) -> String {
    let mut text = diagnostics::scrub(text, roots);
    for (path, name) in farm {
        text = text.replace(&*path.to_string_lossy(), name);
    }
    text
}

/// A failure of the project's own making.
pub(super) fn fail(step: Step, message: impl Into<String>) -> Failure {
    Failure {
        step,
        message: message.into(),
        cause: Cause::User,
        code: "failed",
        diagnostics: Vec::new(),
        diagnostics_total: 0,
        framework: None,
    }
}

/// A failure of the farm's making.
pub(super) fn infra(step: Step, message: impl Into<String>) -> Failure {
    Failure {
        cause: Cause::Infra,
        code: "infrastructure",
        ..fail(step, message)
    }
}

/// A step that could not run to its end: a limit passed, the deadline, or Kiln unable to run
/// the tool at all (the builder's fault, not the project's).
pub(super) fn run_failure(step: Step, e: RunError) -> Failure {
    let code = match &e {
        RunError::Spawn { .. } | RunError::Wait { .. } => return infra(step, e.to_string()),
        RunError::Timeout { .. } => "timeout",
        RunError::Stopped => "stopped",
        RunError::Limit(Breach::Memory { .. }) => "memory_limit",
        RunError::Limit(Breach::Cpu { .. } | Breach::CpuMeasured { .. }) => "cpu_limit",
        RunError::Limit(Breach::Procs { .. }) => "process_limit",
        RunError::Limit(Breach::Disk { .. }) => "disk_limit",
        RunError::Limit(Breach::Log { .. }) => "log_limit",
    };
    fail(step, e.to_string()).code(code)
}

/// A store error: the farm's when it may pass (I/O, an unreachable service), else final
/// (a missing or corrupt object does not come back by itself).
pub(super) fn store_failure(step: Step, e: &StoreError) -> Failure {
    if e.is_transient() {
        infra(step, e.to_string())
    } else {
        fail(step, e.to_string()).code("store")
    }
}

/// An upload that failed: the store's fault when it could not write, else the output's (a file
/// that cannot be read).
pub(super) fn publish_failure(e: PublishError) -> Failure {
    match &e {
        PublishError::Store(store) => store_failure(Step::Upload, store),
        _ => output_failure(Step::Upload, e),
    }
}

/// The output refused for what it is (too large, too many files, a link out…).
pub(super) fn output_failure(step: Step, e: PublishError) -> Failure {
    let code = match &e {
        PublishError::TooLarge { .. } => "output_too_large",
        PublishError::TooMany { .. } => "output_too_many_files",
        PublishError::Empty => "output_empty",
        PublishError::LinkOut { .. } | PublishError::HardLinkOut { .. } => "output_link_out",
        PublishError::Changed { .. } => "output_changed",
        PublishError::Io(_) | PublishError::Store(_) => "output_unreadable",
    };
    fail(step, e.to_string()).code(code)
}

/// A failure to read or write in the workspace, saying `message`: the project's when the tree
/// was refused (a link out, a FIFO, a file over its bound), else the farm's.
pub(super) fn beneath_failure(step: Step, message: String, e: &BeneathError) -> Failure {
    if e.is_refusal() {
        fail(step, message).code("refused_path")
    } else {
        infra(step, message)
    }
}

/// What went wrong reading a file: the refusal as is ("pnpm-lock.yaml is a symbolic link that
/// leaves the project"), else "reading <path>: <error>".
pub(super) fn reading(e: &BeneathError) -> String {
    if e.is_refusal() {
        e.to_string()
    } else {
        format!("reading {e}")
    }
}
