//! A builder daemon: who it is, how many builds it runs, where it works, and what one build
//! may take and produce.

use std::path::PathBuf;
use std::time::Duration;

/// One builder daemon's settings.
#[derive(Debug, Clone)]
pub struct BuilderSettings {
    /// Its name in the consumer group and the fleet (`KILN_BUILDER_ID`; default: host and pid).
    pub id: Option<String>,
    /// Builds it runs at once (`KILN_BUILDER_CONCURRENCY`, 1).
    pub concurrency: usize,
    /// Where builds' workspaces live (`KILN_WORK_DIR`, default `$KILN_DATA_DIR/work`).
    pub work_dir: PathBuf,
    /// The shared pnpm store (`KILN_PNPM_STORE`, default inside the work folder, so that a
    /// sandboxed install can hard-link from it).
    pub pnpm_store: PathBuf,
    /// The time one build may take (`KILN_BUILD_TIMEOUT_SECS`, 300).
    pub build_timeout: Duration,
    /// Bytes one build may publish (`KILN_MAX_OUTPUT_MB`, 100).
    pub max_output_bytes: u64,
    /// Files one build may publish (`KILN_MAX_OUTPUT_FILES`, 20,000).
    pub max_output_files: usize,
    /// The build log kept per build (`KILN_MAX_LOG_KB`, 1024).
    pub max_log_bytes: usize,
    /// The command that turns a prompt into sources (`KILN_GENERATOR_CMD`); unset: prompt-only
    /// builds are refused at admission.
    pub generator_cmd: Option<String>,
    /// Where the daemon serves `GET /metrics` and `/healthz` (`KILN_METRICS_ADDR`, default
    /// `127.0.0.1:9465`; `off`: nowhere). Port 0 picks a free port; the daemon's fleet report
    /// says which.
    pub metrics_addr: Option<String>,
    /// Whether builders record build events (`KILN_BUILD_EVENTS=off` is for measuring what
    /// they cost; clients then see only `build_queued`).
    pub build_events: bool,
}
