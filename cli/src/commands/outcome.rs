//! How a command that ran ended, for its exit code.

/// How a command that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    /// A build watched failed, was cancelled or superseded: exit code 3.
    NotDeployed,
}
