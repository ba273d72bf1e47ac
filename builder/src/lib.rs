//! kiln-builder: the daemon that consumes the build stream and runs builds.
//!
//! - [`context`]: the [`Builder`], one daemon's connections and settings, shared by all below.
//! - [`worker`]: one worker slot's loop, and [`Builder::step`], which takes and runs at most one
//!   build (tests step a builder with it).
//! - [`daemon`]: `run(settings, shutdown)`: the workers and the daemon's background tasks
//!   (heartbeat, cancel listener, drain deadline, reconciler).
//! - `job`: one build from claim to record: the claim, its stations (fetch, generate, install,
//!   audit, build, output, upload), the books of its outcome, and why it failed.
//! - `lease`: a running attempt's claim (renewed, lost, taken over) and what stops it early:
//!   a cancel, a lost claim, the drain deadline.
//! - `process`: untrusted child processes, each a step run in its `StepEnv`: process group,
//!   scrubbed environment, wall-clock limit, bounded log capture, the whole tree killed at the
//!   end.
//! - `sandbox`: how build processes are confined (own user, namespaces, cgroup, rlimits) and
//!   watched against their limits.
//! - `metrics`: the daemon's `/metrics` and `/healthz` listener (`KILN_METRICS_ADDR`).
//! - [`reconcile`]: queued builds that lost their stream entry are queued again.
//! - [`diagnostics`]: a failed step's output turned into diagnostics (tool, file relative to
//!   the project, line, column, code, message), the short `error` summary, builder paths scrubbed.
//! - `workspace`, `detect`, `publish`, `generator`: the stations of a build.
//! - [`packages`]: the fleet-wide package cache, a pull-through registry the egress proxy
//!   serves to installs from the artifact store.
//! - `which`: a program found on a `PATH` (the sandbox's tools, a step's program).
//! - [`beneath`]: files the daemon (root) reads and writes inside a workspace build code
//!   controlled: resolved beneath a folder it opened, links out refused, special files and
//!   oversized ones never read.

pub mod audit;
pub mod beneath;
mod checks;
pub mod context;
pub mod daemon;
pub mod deps;
mod detect;
pub mod diagnostics;
mod events;
mod generator;
mod job;
mod lease;
mod log;
mod metrics;
mod package_manager;
pub mod packages;
mod process;
mod publish;
pub mod reconcile;
mod redact;
mod sandbox;
mod scripts;
pub mod untrusted;
pub mod upkeep;
mod which;
pub mod worker;
mod workspace;

pub use context::Builder;
pub use daemon::run;
pub use worker::StepOutcome;
