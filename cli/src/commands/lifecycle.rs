//! `kiln projects`, `kiln project delete` and `kiln user delete`: listing projects and removing
//! them. A deletion asks first on a terminal; off a terminal it needs `--yes`.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::args::{Paging, ProjectCommand, UserCommand};
use crate::client::{path, with_query, Client};
use crate::link::Link;
use crate::output::{self, line};

/// How often `kiln user delete --wait` reads the deletion's status.
const POLL: Duration = Duration::from_millis(500);

/// `kiln projects [--user U]`: newest activity first.
pub(super) async fn projects(
    client: &Client,
    user: Option<String>,
    paging: &Paging,
    json_out: bool,
) -> anyhow::Result<()> {
    let url = |before: Option<&str>| {
        with_query(
            "/v1/projects",
            [
                ("limit", Some(paging.limit.to_string())),
                ("userId", user.clone()),
                ("before", before.map(str::to_owned)),
            ],
        )
    };
    let page = client
        .pages("projects", paging.before.clone(), paging.all, url)
        .await?;
    if json_out {
        line(&json!({ "projects": page.rows, "nextCursor": page.next }).to_string());
        return Ok(());
    }
    let now = chrono::Utc::now();
    let rows = page
        .rows
        .iter()
        .map(|p| {
            let last = &p["lastBuild"];
            vec![
                format!(
                    "{}/{}",
                    p["userId"].as_str().unwrap_or("?"),
                    p["projectId"].as_str().unwrap_or("?")
                ),
                p["versions"].to_string(),
                last["status"]
                    .as_str()
                    .map_or_else(|| "-".to_owned(), output::status),
                output::ago(&last["createdAt"], now),
                p["latestUrl"].as_str().unwrap_or("-").to_owned(),
            ]
        })
        .collect();
    output::table(&["PROJECT", "VERSIONS", "LAST BUILD", "AGE", "LATEST"], 4, rows);
    let command = match &user {
        Some(u) => format!("kiln projects --user {u}"),
        None => "kiln projects".to_owned(),
    };
    output::more(page.next.as_deref(), &command);
    Ok(())
}

/// `kiln project delete <user>/<project>`.
pub(super) async fn delete_project(
    client: &Client,
    command: ProjectCommand,
    json_out: bool,
) -> anyhow::Result<()> {
    let ProjectCommand::Delete { project, yes } = command else {
        anyhow::bail!("not a deletion");
    };
    let link = Link::parse(&project)?;
    let name = format!("{}/{}", link.user, link.project);
    confirm(
        yes,
        &format!("Delete project {name}, every version, log and preview of it, for good?"),
    )?;
    let answer = client
        .ok(
            "DELETE",
            &path(&["v1", "projects", link.user.as_str(), link.project.as_str()]),
            None,
        )
        .await?;
    if json_out {
        line(&answer.to_string());
        return Ok(());
    }
    let d = &answer["deleted"];
    line(&format!(
        "deleted {name}: {} versions, {} events, {} logs",
        d["versions"], d["events"], d["logs"]
    ));
    if let Some(cancelled) = d["cancelled"].as_array().filter(|c| !c.is_empty()) {
        let ids: Vec<&str> = cancelled.iter().filter_map(Value::as_str).collect();
        line(&format!("cancelled {}", ids.join(", ")));
    }
    eprintln!("Its files are collected by the next maintenance run (kiln-ops maintain).");
    Ok(())
}

/// `kiln user delete <user> [--wait]`.
pub(super) async fn user(client: &Client, command: UserCommand, json_out: bool) -> anyhow::Result<()> {
    let UserCommand::Delete { user, yes, wait } = command;
    confirm(
        yes,
        &format!("Delete every project of user {user}, with every version, log and preview, for good?"),
    )?;
    let mut status = client
        .ok("DELETE", &path(&["v1", "users", user.as_str()]), None)
        .await?;
    let url = status["statusUrl"]
        .as_str()
        .context("the API answered without a statusUrl")?
        .to_owned();
    if !json_out {
        line(&format!(
            "deletion {} of {user}: {}",
            status["deletionId"].as_str().unwrap_or("?"),
            url
        ));
    }
    while wait && status["status"] != "done" {
        tokio::time::sleep(POLL).await;
        status = client.ok("GET", &url, None).await?;
    }
    if json_out {
        line(&status.to_string());
    } else {
        line(&format!(
            "{}: {} of {} projects deleted",
            status["status"].as_str().unwrap_or("?"),
            status["projectsDeleted"],
            status["projectsTotal"]
        ));
    }
    Ok(())
}

/// Asks `question` on a terminal (yes only for `y` or `yes`); off a terminal, only `--yes`
/// goes on.
fn confirm(yes: bool, question: &str) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to delete without --yes (standard input is not a terminal to ask on)");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        bail!("not deleted")
    }
}
