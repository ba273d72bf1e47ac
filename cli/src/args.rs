//! The command line: `kiln`'s commands and options, parsed by clap.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Submit, watch and list builds on a Kiln farm"
)]
pub(crate) struct Cli {
    /// The API's URL.
    #[arg(
        long,
        env = "KILN_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub(crate) url: String,
    /// A bearer token (operators and people).
    #[arg(long, env = "KILN_TOKEN", hide_env_values = true, global = true)]
    pub(crate) token: Option<String>,
    /// The HMAC secret of the product back end (used when no token is given).
    #[arg(long, env = "KILN_HMAC_SECRET", hide_env_values = true, global = true)]
    pub(crate) hmac_secret: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Submit a project folder (a first build, or a rebuild with the whole folder).
    Submit {
        dir: PathBuf,
        #[arg(long)]
        user: String,
        #[arg(long)]
        project: String,
        /// The prompt that produced these files (kept with the version).
        #[arg(long)]
        prompt: Option<String>,
        /// Build on this version instead of the latest.
        #[arg(long)]
        base: Option<String>,
        /// Show progress until the build ends, then print its preview URL.
        #[arg(long)]
        wait: bool,
        /// With --wait: stream the build's log lines too.
        #[arg(long, requires = "wait")]
        logs: bool,
    },
    /// Follow a build live: a progress bar with the current step (and its log with --logs)
    /// until it ends; exits non-zero when it fails.
    Watch {
        id: String,
        /// Stream the build's log lines (stdout) beside the progress (stderr).
        #[arg(long)]
        logs: bool,
    },
    /// Show one build.
    Status { id: String },
    /// Cancel a queued or running build (its processes are stopped; the project is free at once).
    Cancel { id: String },
    /// Queue a failed or cancelled build again, with the same sources.
    Retry {
        id: String,
        /// Show progress until the new build ends.
        #[arg(long)]
        wait: bool,
    },
    /// A project's versions, newest first (`*` marks the latest).
    Versions {
        /// `<user>/<project>`
        project: String,
    },
    /// Make an earlier (or later) deployed version the project's latest, instantly.
    Rollback {
        /// `<user>/<project>`
        project: String,
        version: String,
    },
    /// Compare the sources of two versions (a unified diff, or a summary with --stat).
    Diff {
        /// `<user>/<project>`
        project: String,
        a: String,
        b: String,
        #[arg(long)]
        stat: bool,
    },
    /// Download a zip of a version's output (or, with --source, its sources).
    Download {
        version: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long)]
        source: bool,
    },
    /// User tokens: make one for a user (shown once), list a user's, revoke one.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// List builds, newest first.
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Make a token for a user (with an operator token or the back end's secret). It is printed
    /// once: Kiln keeps only its hash.
    Create {
        #[arg(long)]
        user: String,
        /// What the token is for (kept as its description), e.g. "laptop".
        #[arg(long, visible_alias = "description")]
        name: Option<String>,
    },
    /// A user's tokens, newest first (never the tokens themselves); with a user token, its own
    /// user's.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by its id: it stops working at once, on every API instance.
    Revoke { id: String },
}
