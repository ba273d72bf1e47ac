//! Why an attempt failed, and whose fault it was: the project's (the build fails at once) or
//! the farm's (the attempt is tried again). Every station's error becomes a [`Failure`] here.

use kiln_shared::domain::Step;
use kiln_shared::store::StoreError;

use crate::beneath::BeneathError;
use crate::publish::PublishError;

/// Why an attempt failed: the station, a message for the user, and whose fault it was.
#[derive(Debug)]
pub struct Failure {
    pub step: Step,
    pub message: String,
    pub cause: Cause,
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

/// A failure of the project's own making.
pub(super) fn fail(step: Step, message: impl Into<String>) -> Failure {
    Failure {
        step,
        message: message.into(),
        cause: Cause::User,
    }
}

/// A failure of the farm's making.
pub(super) fn infra(step: Step, message: impl Into<String>) -> Failure {
    Failure {
        step,
        message: message.into(),
        cause: Cause::Infra,
    }
}

/// A store error: the farm's when it may pass (I/O, an unreachable service), else final
/// (a missing or corrupt object does not come back by itself).
pub(super) fn store_failure(step: Step, e: &StoreError) -> Failure {
    if e.is_transient() {
        infra(step, e.to_string())
    } else {
        fail(step, e.to_string())
    }
}

/// An upload that failed: the store's fault when it could not write, else the output's (a file
/// that cannot be read).
pub(super) fn publish_failure(e: PublishError) -> Failure {
    match &e {
        PublishError::Store(store) => store_failure(Step::Upload, store),
        _ => fail(Step::Upload, e.to_string()),
    }
}

/// A failure to read or write in the workspace, saying `message`: the project's when the tree
/// was refused (a link out, a FIFO, a file over its bound), else the farm's.
pub(super) fn beneath_failure(step: Step, message: String, e: &BeneathError) -> Failure {
    if e.is_refusal() {
        fail(step, message)
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
