//! The command line: `kiln`'s commands and options, parsed by clap.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// What `kiln --help` says about exit codes and where settings come from.
const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  an error (the API refused, could not be reached, bad credentials...)
  2  a usage error (a wrong or missing argument)
  3  the build watched did not deploy (it failed, was cancelled or superseded)

Settings: --url/KILN_URL and --token/KILN_TOKEN win over the profile `kiln login` wrote to
$XDG_CONFIG_HOME/kiln/config.toml (~/.config/kiln/config.toml). The product back end's
HMAC secret is read from KILN_HMAC_SECRET (or the file KILN_HMAC_SECRET_FILE names) only.";

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Submit, watch and list builds on a Kiln farm",
    after_help = AFTER_HELP
)]
pub(crate) struct Cli {
    /// The API's URL [default: the profile's, else http://127.0.0.1:8080].
    #[arg(long, env = "KILN_URL", global = true, value_name = "URL")]
    pub(crate) url: Option<String>,
    /// A bearer token, an operator's or a user's (else the profile's).
    #[arg(
        long,
        env = "KILN_TOKEN",
        hide_env_values = true,
        global = true,
        value_name = "TOKEN"
    )]
    pub(crate) token: Option<String>,
    /// The profile of the configuration file to use [default: the one last logged in].
    #[arg(long, env = "KILN_PROFILE", global = true, value_name = "NAME")]
    pub(crate) profile: Option<String>,
    /// Print the API's JSON (absolute times) instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// A build's status, as `--status` takes it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Status {
    Queued,
    Running,
    Deployed,
    Failed,
    Cancelled,
    Superseded,
}

impl Status {
    /// The API's name of the status.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Deployed => "deployed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Superseded => "superseded",
        }
    }
}

/// The shells `kiln completion` writes a script for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// `--before` and `--all` of a list.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Paging {
    /// How many to show (per page with --all).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub(crate) limit: u32,
    /// Only those older than this build or version id (a list's `nextCursor`).
    #[arg(long, value_name = "ID", conflicts_with = "all")]
    pub(crate) before: Option<String>,
    /// Every page, not only the first.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Save an API URL and a token as a profile (checked against the API first).
    Login {
        /// The API's URL [default: --url/KILN_URL, else http://127.0.0.1:8080].
        #[arg(value_name = "URL")]
        api: Option<String>,
        /// Read the token from standard input (else it is asked for on a terminal, or taken
        /// from --token/KILN_TOKEN).
        #[arg(long)]
        with_token: bool,
    },
    /// Forget a profile's token (the current profile, or --profile's).
    Logout,
    /// Who the credentials in use are, on which API.
    Whoami,
    /// Link a project folder to `<user>/<project>`, so `submit` needs no --user/--project.
    Link {
        /// `<user>/<project>`
        #[arg(value_name = "USER/PROJECT")]
        target: String,
        /// The project folder.
        #[arg(long, default_value = ".", value_name = "DIR")]
        dir: PathBuf,
    },
    /// Submit a project folder (a first build, or a rebuild with the whole folder), or only a
    /// prompt for the farm's generator.
    ///
    /// Files ignored by .gitignore, .ignore or .kilnignore are left out, and so are
    /// `.env.local` and `.env.*.local`, `.git*`, `node_modules` and build output folders.
    Submit {
        /// The project folder [default: none with --prompt, else the current folder].
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The project's user [default: the folder's `kiln link`].
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// The project [default: the folder's `kiln link`].
        #[arg(long, value_name = "PROJECT")]
        project: Option<String>,
        /// The prompt that produced these files (kept with the version); alone, the farm's
        /// generator writes the files.
        #[arg(long, value_name = "TEXT")]
        prompt: Option<String>,
        /// Build on this version instead of the latest.
        #[arg(long, value_name = "ID")]
        base: Option<String>,
        /// Show progress until the build ends, then print its preview URL.
        #[arg(long)]
        wait: bool,
        /// With --wait: stream the build's log lines too.
        #[arg(long, requires = "wait")]
        logs: bool,
        /// Build even when a deployed version is identical (its output is reused otherwise).
        #[arg(long)]
        force: bool,
    },
    /// Follow a build live: a progress bar with the current step (and its log with --logs)
    /// until it ends; exits 3 when it does not deploy.
    Watch {
        /// The build's id.
        id: String,
        /// Stream the build's log lines (stdout) beside the progress (stderr).
        #[arg(long)]
        logs: bool,
    },
    /// A build's log: the whole of it, or followed live with --follow.
    Logs {
        /// The build's id.
        id: String,
        /// Follow the log until the build ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Show one build.
    Status {
        /// The build's id.
        id: String,
    },
    /// Print a build's preview URL, and open it in the browser on a terminal.
    Open {
        /// The build's id.
        id: String,
        /// Only print the URL.
        #[arg(long)]
        no_browser: bool,
    },
    /// Cancel a queued or running build (its processes are stopped; the project is free at once).
    Cancel {
        /// The build's id.
        id: String,
    },
    /// Queue a failed or cancelled build again, with the same sources.
    Retry {
        /// The build's id.
        id: String,
        /// Show progress until the new build ends.
        #[arg(long)]
        wait: bool,
    },
    /// List builds, newest first.
    List {
        /// Only this user's builds.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Only this project's builds.
        #[arg(long, value_name = "PROJECT")]
        project: Option<String>,
        /// Only builds with this status.
        #[arg(long, value_enum)]
        status: Option<Status>,
        #[command(flatten)]
        paging: Paging,
    },
    /// A project's versions, newest first (`*` marks the latest).
    Versions {
        /// `<user>/<project>`
        #[arg(value_name = "USER/PROJECT")]
        project: String,
        #[command(flatten)]
        paging: Paging,
    },
    /// Make an earlier (or later) deployed version the project's latest, instantly.
    Rollback {
        /// `<user>/<project>`
        #[arg(value_name = "USER/PROJECT")]
        project: String,
        /// The version to make the latest.
        version: String,
    },
    /// Compare the sources of two versions (a unified diff, or a summary with --stat).
    Diff {
        /// `<user>/<project>`
        #[arg(value_name = "USER/PROJECT")]
        project: String,
        /// The older version.
        a: String,
        /// The newer version.
        b: String,
        /// Counts per file instead of the patch.
        #[arg(long)]
        stat: bool,
    },
    /// Download a zip of a version's output (or, with --source, its sources).
    Download {
        /// The version (build) id.
        version: String,
        /// Where to write the zip [default: <project>-<id>.zip].
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The version's sources instead of its output.
        #[arg(long)]
        source: bool,
    },
    /// A project's environment: list, set and remove the values its builds see.
    Env {
        #[command(subcommand)]
        command: EnvCommand,
    },
    /// Build a version's sources again with the project's current settings and environment.
    Redeploy {
        /// `<user>/<project>`
        #[arg(value_name = "USER/PROJECT")]
        project: String,
        /// The version whose sources to build [default: the latest deployed].
        #[arg(long, value_name = "VERSION")]
        version: Option<String>,
        /// Show progress until the new build ends.
        #[arg(long)]
        wait: bool,
        /// Build even when nothing changed (the deployed output is reused otherwise).
        #[arg(long)]
        force: bool,
    },
    /// Projects, newest activity first (with a user token: its own user's).
    Projects {
        /// Only this user's projects.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// One project: show it (settings, environment names, latest, counts) or delete it.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// A user's data: delete every project of a user (account deletion).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The live builders: what each runs, its slots and when it was last seen.
    Builders,
    /// User tokens: make one for a user (shown once), list a user's, revoke one.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Make a link that opens a private project's previews (the latest URL, or one version's),
    /// or revoke them all with `kiln share revoke <user>/<project>`.
    #[command(args_conflicts_with_subcommands = true)]
    Share {
        #[command(subcommand)]
        command: Option<ShareCommand>,
        #[command(flatten)]
        link: ShareLink,
    },
    /// Print a shell's completion script, e.g. `kiln completion bash > ~/.local/share/bash-completion/completions/kiln`.
    Completion {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum EnvCommand {
    /// The project's values (a secret's value is never shown).
    Ls {
        /// `<user>/<project>`
        #[arg(value_name = "USER/PROJECT")]
        project: String,
    },
    /// Set a value: `NAME=value`, or `NAME` alone to read the value from standard input (or a
    /// prompt). A secret is always read so, never from the command line.
    Set {
        /// `<user>/<project>`
        #[arg(value_name = "USER/PROJECT")]
        project: String,
        /// `NAME=value` (a plain value), or `NAME`.
        #[arg(value_name = "NAME[=VALUE]")]
        assignment: String,
        /// Store it encrypted; it is never shown again.
        #[arg(long)]
        secret: bool,
    },
    /// Remove a value.
    Rm {
        /// `<user>/<project>`
        #[arg(value_name = "USER/PROJECT")]
        project: String,
        /// The name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectCommand {
    /// A project's settings, environment names (never a value), latest version and counts.
    Show {
        /// `<user>/<project>`
        #[arg(value_name = "USER/PROJECT")]
        project: String,
    },
    /// Delete a project: its builds are cancelled; its versions, events, logs, environment,
    /// settings and previews are gone for good (operator token or the back end's secret).
    Delete {
        /// `<user>/<project>`
        #[arg(value_name = "USER/PROJECT")]
        project: String,
        /// Do not ask (required when standard input is not a terminal).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Delete every project of a user, in the background on the API (operator token or the
    /// back end's secret); prints the deletion's id and status URL.
    Delete {
        /// The user whose projects to delete.
        #[arg(value_name = "USER")]
        user: String,
        /// Do not ask (required when standard input is not a terminal).
        #[arg(long)]
        yes: bool,
        /// Follow the deletion until it is done.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Make a token for a user (with an operator token or the back end's secret). It is printed
    /// once: Kiln keeps only its hash.
    Create {
        /// The user the token acts as.
        #[arg(long, value_name = "USER")]
        user: String,
        /// What the token is for (kept as its description), e.g. "laptop".
        #[arg(long, visible_alias = "description", value_name = "TEXT")]
        name: Option<String>,
    },
    /// A user's tokens, newest first (never the tokens themselves); with a user token, its own
    /// user's.
    List {
        /// The user whose tokens to list.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
    /// Revoke a token by its id: it stops working at once, on every API instance.
    Revoke {
        /// The token's id (not the token).
        id: String,
    },
}

/// `kiln share <user>/<project>`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ShareLink {
    /// `<user>/<project>`
    #[arg(value_name = "USER/PROJECT")]
    pub(crate) project: Option<String>,
    /// Open only this version's preview (else the latest URL, and every version).
    #[arg(long, value_name = "ID")]
    pub(crate) version: Option<String>,
    /// How long the link works: `30m`, `12h`, `7d`... (at most 30 days).
    #[arg(long, default_value = "7d", value_name = "DURATION")]
    pub(crate) ttl: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ShareCommand {
    /// Revoke every share link of a project at once (links and the cookies they set).
    Revoke {
        /// `<user>/<project>`
        #[arg(value_name = "USER/PROJECT")]
        project: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_one_the_api_knows() {
        for status in Status::value_variants() {
            let name = status.as_str();
            assert!(name.parse::<kiln_shared::domain::BuildStatus>().is_ok(), "{name}");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_and_argument_says_what_it_is() {
        use clap::CommandFactory;
        fn check(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.get_help().is_none() && !["help", "version"].contains(&arg.get_id().as_str()) {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(path.clone());
                }
                check(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        check(&Cli::command(), "kiln", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }
}
