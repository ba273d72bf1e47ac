//! `kiln env ls|set|rm`: a project's environment. A secret's value is read from standard input
//! or a prompt without echo, never from the command line (where `ps` and shell history would
//! keep it).

use std::io::{IsTerminal, Read};

use anyhow::{bail, Context};
use serde_json::json;

use super::projects::project_path;
use crate::args::EnvCommand;
use crate::client::Client;
use crate::output::{self, line};

fn env_path(project: &str, name: Option<&str>) -> anyhow::Result<String> {
    let mut more = vec!["env"];
    more.extend(name);
    project_path(project, &more)
}

pub(super) async fn env(client: &Client, command: EnvCommand, json_out: bool) -> anyhow::Result<()> {
    match command {
        EnvCommand::Ls { project } => {
            let list = client.ok("GET", &env_path(&project, None)?, None).await?;
            if json_out {
                line(&list.to_string());
                return Ok(());
            }
            let now = chrono::Utc::now();
            let rows = list["vars"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| {
                    let value = match v["secret"].as_bool() {
                        Some(true) => "(secret)".to_owned(),
                        _ => v["value"].as_str().unwrap_or("").to_owned(),
                    };
                    vec![
                        v["name"].as_str().unwrap_or("?").to_owned(),
                        value,
                        output::ago(&v["updatedAt"], now),
                    ]
                })
                .collect();
            output::table(&["NAME", "VALUE", "UPDATED"], 1, rows);
        }
        EnvCommand::Set {
            project,
            assignment,
            secret,
        } => {
            let (name, value) = match assignment.split_once('=') {
                Some(_) if secret => bail!(
                    "a secret is not taken from the command line (shell history and ps would keep it): run `kiln env set {project} NAME --secret` and type or pipe the value"
                ),
                Some((name, value)) => (name.to_owned(), value.to_owned()),
                None => (assignment.clone(), read_value(&assignment)?),
            };
            let body = json!({ "value": value, "secret": secret });
            let set = client
                .ok("PUT", &env_path(&project, Some(&name))?, Some(&body))
                .await?;
            if json_out {
                line(&set.to_string());
            } else {
                line(&format!(
                    "set {}{} on {project}: the next build (or `kiln redeploy {project}`) uses it",
                    set["name"].as_str().unwrap_or(&name),
                    if secret { " (secret)" } else { "" }
                ));
            }
        }
        EnvCommand::Rm { project, name } => {
            let gone = client
                .ok("DELETE", &env_path(&project, Some(&name))?, None)
                .await?;
            if json_out {
                line(&gone.to_string());
            } else {
                line(&format!("removed {name} from {project}"));
            }
        }
    }
    Ok(())
}

/// A value from standard input (its one trailing newline dropped), or asked for without echo.
fn read_value(name: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password(format!("{name}: "))?);
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the value from standard input")?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_owned())
}
