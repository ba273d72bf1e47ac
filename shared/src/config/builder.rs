//! A builder daemon: who it is, how many builds it runs, where it works, and what one build
//! may take and produce.

use std::path::PathBuf;
use std::time::Duration;

use super::definition::{section, Fallback, Kind, Variable, API_BUILDER, BUILDER};

section! {
    title: "Builder",
    intro: "A builder daemon: who it is, how many builds it runs, where it works, and what one build may take and produce.",
    BUILDER_ID = Variable::new(
        "KILN_BUILDER_ID",
        Kind::Text,
        Fallback::Otherwise("`<host>-<pid>-<ulid>`"),
        BUILDER,
        "the daemon's name in the consumer group and the fleet",
    )
    .hint("builder-1");
    BUILDER_CONCURRENCY = Variable::new(
        "KILN_BUILDER_CONCURRENCY",
        Kind::Positive,
        Fallback::Value("1"),
        BUILDER,
        "builds the daemon runs at once",
    );
    WORK_DIR = Variable::new(
        "KILN_WORK_DIR",
        Kind::Path,
        Fallback::Otherwise("`$KILN_DATA_DIR/work`"),
        BUILDER,
        "where builds' workspaces live",
    )
    .hint("/var/lib/kiln/work");
    PNPM_STORE = Variable::new(
        "KILN_PNPM_STORE",
        Kind::Path,
        Fallback::Otherwise("`$KILN_WORK_DIR/pnpm-store`"),
        BUILDER,
        "the shared pnpm store",
    )
    .details(
        "Keep the store inside the work folder (the default): sandboxed installs then hard-link \
         packages from it; elsewhere it is a separate mount in the sandbox and pnpm copies every \
         file (the builder warns at start-up).",
    )
    .hint("/var/lib/kiln/work/pnpm-store");
    BUILD_TIMEOUT_SECS = Variable::new(
        "KILN_BUILD_TIMEOUT_SECS",
        Kind::Positive,
        Fallback::Value("300"),
        BUILDER,
        "the wall-clock time one build may take, in seconds",
    );
    MAX_OUTPUT_MB = Variable::new(
        "KILN_MAX_OUTPUT_MB",
        Kind::Positive,
        Fallback::Value("100"),
        BUILDER,
        "bytes one build may publish, in MB",
    );
    MAX_OUTPUT_FILES = Variable::new(
        "KILN_MAX_OUTPUT_FILES",
        Kind::Positive,
        Fallback::Value("20000"),
        BUILDER,
        "files one build may publish",
    );
    MAX_LOG_KB = Variable::new(
        "KILN_MAX_LOG_KB",
        Kind::Positive,
        Fallback::Value("1024"),
        BUILDER,
        "the build log kept per build, in KB",
    )
    .details("A build printing 16 times past it is stopped (`log limit … exceeded`).");
    GENERATOR_CMD = Variable::new(
        "KILN_GENERATOR_CMD",
        Kind::Text,
        Fallback::Otherwise("none: prompt-only builds are refused at admission"),
        API_BUILDER,
        "the command (run by `sh -c`) that turns a prompt into sources",
    )
    .details(
        "It reads `{\"prompt\",\"userId\",\"projectId\",\"files\"}` on stdin and writes the JSON \
         output contract on stdout.",
    )
    .hint("/usr/local/bin/generate-project");
    METRICS_ADDR = Variable::new(
        "KILN_METRICS_ADDR",
        Kind::Format("`host:port`, or `off`"),
        Fallback::Value("127.0.0.1:9465"),
        BUILDER,
        "where the daemon serves `GET /metrics` and `/healthz`, unauthenticated",
    )
    .details(
        "Bind it to loopback or the private network; `off` for none; port 0 picks a free port \
         (`metricsAddr` in `GET /v1/builders` says which).",
    )
    .example("10.0.0.21:9465");
    BUILD_EVENTS = Variable::new(
        "KILN_BUILD_EVENTS",
        Kind::Switch,
        Fallback::Value("on"),
        BUILDER,
        "whether builders record build events",
    )
    .details("`off` is for measuring what they cost; clients then see only `build_queued`.");
    DEP_CACHE_MB = Variable::new(
        "KILN_DEP_CACHE_MB",
        Kind::PositiveOrOff,
        Fallback::Value("4096"),
        BUILDER,
        "disk the host's warm dependency trees may take, in MB; `off`: every build installs",
    )
    .details(
        "Each project keeps the `node_modules` of its last successful install on the host that \
         ran it; a later build whose dependency key matches gets a copy instead of running \
         `pnpm install`. Counted in full (files shared with the pnpm store too); the least \
         recently used go first.",
    );
}

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
    /// Disk the host's warm dependency trees may take (`KILN_DEP_CACHE_MB`, 4096; `off`:
    /// `None`, every build installs).
    pub dep_cache_bytes: Option<u64>,
}
