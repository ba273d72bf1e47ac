//! Commands on builds: `watch`, `logs`, `status`, `open`, `cancel`, `retry`, `list`.

use std::io::IsTerminal;

use anyhow::Context;
use serde_json::json;

use super::outcome::Outcome;
use crate::args::{Paging, Status};
use crate::client::{path, with_query, Client};
use crate::output::{self, line, print_build};

/// Watches a build to its end: [`Outcome::NotDeployed`] unless it deployed.
pub(super) async fn watch(client: &Client, id: &str, logs: bool, json_out: bool) -> anyhow::Result<Outcome> {
    Ok(if crate::watch::watch(client, id, logs, json_out).await? {
        Outcome::Success
    } else {
        Outcome::NotDeployed
    })
}

/// `kiln logs <id> [--follow]`: the log as it is, or its lines as they come until it ends.
pub(super) async fn logs(client: &Client, id: &str, follow: bool) -> anyhow::Result<()> {
    if follow {
        return crate::watch::follow_log(client, id, line).await;
    }
    let text = client
        .raw_ok(&path(&["v1", "builds", id, "logs"]))
        .await?
        .text()
        .await?;
    output::text(&text);
    Ok(())
}

pub(super) async fn status(client: &Client, id: &str, json_out: bool) -> anyhow::Result<()> {
    let b = client.ok("GET", &path(&["v1", "builds", id]), None).await?;
    if json_out {
        line(&b.to_string());
    } else {
        print_build(&b);
    }
    Ok(())
}

/// `kiln open <id>`: prints the preview URL; opens it in the browser only on a terminal.
pub(super) async fn open(client: &Client, id: &str, no_browser: bool, json_out: bool) -> anyhow::Result<()> {
    let b = client.ok("GET", &path(&["v1", "builds", id]), None).await?;
    let url = b["previewUrl"]
        .as_str()
        .with_context(|| {
            format!(
                "build {id} has no preview (it is {})",
                b["status"].as_str().unwrap_or("?")
            )
        })?
        .to_owned();
    if json_out {
        line(&json!({ "previewUrl": url }).to_string());
        return Ok(());
    }
    line(&url);
    if !no_browser && std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
        if let Err(e) = webbrowser::open(&url) {
            eprintln!("kiln: could not open a browser: {e}");
        }
    }
    Ok(())
}

pub(super) async fn cancel(client: &Client, id: &str, json_out: bool) -> anyhow::Result<()> {
    let b = client
        .ok("POST", &path(&["v1", "builds", id, "cancel"]), Some(&json!({})))
        .await?;
    if json_out {
        line(&b.to_string());
    } else {
        print_build(&b);
    }
    Ok(())
}

pub(super) async fn retry(client: &Client, id: &str, wait: bool, json_out: bool) -> anyhow::Result<Outcome> {
    let q = client
        .ok("POST", &path(&["v1", "builds", id, "retry"]), Some(&json!({})))
        .await?;
    let new = q["buildId"].as_str().unwrap_or_default().to_owned();
    if json_out && !wait {
        line(&q.to_string());
    } else if !json_out {
        line(&format!("retrying {id} as {new}"));
    }
    if wait {
        return watch(client, &new, false, json_out).await;
    }
    Ok(Outcome::Success)
}

/// `kiln redeploy <user>/<project>`: a new build of a version's sources (the latest deployed
/// by default) with the project's current settings and environment.
pub(super) async fn redeploy(
    client: &Client,
    project: &str,
    version: Option<String>,
    wait: bool,
    force: bool,
    json_out: bool,
) -> anyhow::Result<Outcome> {
    let link = crate::link::Link::parse(project)?;
    let url = path(&[
        "v1",
        "projects",
        link.user.as_str(),
        link.project.as_str(),
        "redeploy",
    ]);
    let q = client
        .ok(
            "POST",
            &url,
            Some(&json!({ "versionId": version, "force": force })),
        )
        .await?;
    let new = q["buildId"].as_str().unwrap_or_default().to_owned();
    if json_out && !wait {
        line(&q.to_string());
    } else if !json_out {
        line(&format!(
            "redeploying {} of {project} as {new}",
            q["redeployOf"].as_str().unwrap_or("?")
        ));
    }
    if wait {
        return watch(client, &new, false, json_out).await;
    }
    Ok(Outcome::Success)
}

/// `kiln list`: builds, newest first, a page (or every page with `--all`).
pub(super) async fn list(
    client: &Client,
    user: Option<String>,
    project: Option<String>,
    status: Option<Status>,
    paging: &Paging,
    json_out: bool,
) -> anyhow::Result<()> {
    let url = |before: Option<&str>| {
        with_query(
            "/v1/builds",
            [
                ("limit", Some(paging.limit.to_string())),
                ("userId", user.clone()),
                ("projectId", project.clone()),
                ("status", status.map(|s| s.as_str().to_owned())),
                ("before", before.map(str::to_owned)),
            ],
        )
    };
    let page = client
        .pages("builds", paging.before.clone(), paging.all, url)
        .await?;
    if json_out {
        line(&json!({ "builds": page.rows, "nextCursor": page.next }).to_string());
        return Ok(());
    }
    let now = chrono::Utc::now();
    let rows = page
        .rows
        .iter()
        .map(|b| {
            let took = b["metrics"]["totalMs"]
                .as_i64()
                .map_or_else(|| "-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
            vec![
                b["id"].as_str().unwrap_or("?").to_owned(),
                output::status(b["status"].as_str().unwrap_or("?")),
                format!(
                    "{}/{}",
                    b["userId"].as_str().unwrap_or("?"),
                    b["projectId"].as_str().unwrap_or("?")
                ),
                took,
                output::ago(&b["createdAt"], now),
            ]
        })
        .collect();
    output::table(&["BUILD", "STATUS", "PROJECT", "TOOK", "AGE"], 2, rows);
    output::more(page.next.as_deref(), "kiln list");
    Ok(())
}
