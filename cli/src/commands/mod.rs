//! What each command does, one module per group: [`account`] (login, logout, whoami, link),
//! [`submit`], [`builds`] (watch, logs, status, open, cancel, retry, list), [`projects`]
//! (versions, rollback, diff, download), [`env`], [`lifecycle`] (projects, project delete, user
//! delete), [`project`] (project show, share), [`tokens`], [`fleet`] (builders). [`run`] hands a
//! parsed command line to its module.

use clap::CommandFactory;

use crate::args::{Cli, Command, Shell};
use crate::client::Client;

pub(crate) use outcome::Outcome;

mod account;
mod builds;
mod env;
mod fleet;
mod lifecycle;
mod outcome;
mod project;
mod projects;
mod submit;
mod tokens;

/// Runs a command.
pub(crate) async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let json = cli.json;
    // What needs no API (or makes a profile).
    let command = match cli.command {
        Command::Login { api, with_token } => {
            account::login(api.or(cli.url), cli.token, cli.profile, with_token, json).await?;
            return Ok(Outcome::Success);
        }
        Command::Link { target, dir } => {
            account::link(&target, &dir, json)?;
            return Ok(Outcome::Success);
        }
        Command::Completion { shell } => {
            completion(shell);
            return Ok(Outcome::Success);
        }
        command => command,
    };
    let resolved = crate::config::resolve(cli.url, cli.token, cli.profile.as_deref())?;
    let client = Client::new(&resolved)?;
    match command {
        Command::Login { .. } | Command::Link { .. } | Command::Completion { .. } => {
            unreachable!("handled above")
        }
        Command::Logout => account::logout(cli.profile.as_deref(), &resolved)?,
        Command::Whoami => account::whoami(&client, &resolved, json).await?,
        Command::Submit {
            dir,
            user,
            project,
            prompt,
            base,
            wait,
            logs,
            force,
        } => {
            let submission = submit::Submission {
                dir,
                user,
                project,
                prompt,
                base,
                force,
            };
            return submit::submit(&client, submission, wait, logs, json).await;
        }
        Command::Watch { id, logs } => return builds::watch(&client, &id, logs, json).await,
        Command::Logs { id, follow } => builds::logs(&client, &id, follow).await?,
        Command::Status { id } => builds::status(&client, &id, json).await?,
        Command::Open { id, no_browser } => builds::open(&client, &id, no_browser, json).await?,
        Command::Cancel { id } => builds::cancel(&client, &id, json).await?,
        Command::Retry { id, wait } => return builds::retry(&client, &id, wait, json).await,
        Command::List {
            user,
            project,
            status,
            paging,
        } => builds::list(&client, user, project, status, &paging, json).await?,
        Command::Versions { project, paging } => projects::versions(&client, &project, &paging, json).await?,
        Command::Rollback { project, version } => {
            projects::rollback(&client, &project, &version, json).await?
        }
        Command::Diff { project, a, b, stat } => {
            projects::diff(&client, &project, &a, &b, stat, json).await?
        }
        Command::Download {
            version,
            output,
            source,
        } => projects::download(&client, &version, output, source, json).await?,
        Command::Env { command } => env::env(&client, command, json).await?,
        Command::Redeploy {
            project,
            version,
            wait,
            force,
        } => return builds::redeploy(&client, &project, version, wait, force, json).await,
        Command::Projects { user, paging } => lifecycle::projects(&client, user, &paging, json).await?,
        Command::User { command } => lifecycle::user(&client, command, json).await?,
        Command::Builders => fleet::builders(&client, json).await?,
        Command::Token { command } => tokens::token(&client, command, json).await?,
        Command::Project { command } => project::project(&client, command, json).await?,
        Command::Share { command, link } => project::share(&client, command, link, json).await?,
    }
    Ok(Outcome::Success)
}

/// `kiln completion <shell>`: the shell's completion script on stdout.
fn completion(shell: Shell) {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "kiln", &mut std::io::stdout());
}
