//! Commands on a project's versions: `versions`, `rollback`, `diff`, `download`.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::args::Paging;
use crate::client::{path, with_query, Client};
use crate::link::Link;
use crate::output::{self, line, print_build};

/// `<user>/<project>` as the path of the API, with more segments after it.
pub(super) fn project_path(raw: &str, more: &[&str]) -> anyhow::Result<String> {
    let link = Link::parse(raw)?;
    let mut segments = vec!["v1", "projects", link.user.as_str(), link.project.as_str()];
    segments.extend_from_slice(more);
    Ok(path(&segments))
}

/// `kiln versions <user>/<project>`: newest first, `*` marking the latest.
pub(super) async fn versions(
    client: &Client,
    project: &str,
    paging: &Paging,
    json_out: bool,
) -> anyhow::Result<()> {
    let base = project_path(project, &["versions"])?;
    let url = |before: Option<&str>| {
        with_query(
            &base,
            [
                ("limit", Some(paging.limit.to_string())),
                ("before", before.map(str::to_owned)),
            ],
        )
    };
    let page = client
        .pages("versions", paging.before.clone(), paging.all, url)
        .await?;
    if json_out {
        line(&json!({ "versions": page.rows, "nextCursor": page.next }).to_string());
        return Ok(());
    }
    let latest = client
        .send("GET", &project_path(project, &["latest"])?, None)
        .await?
        .1;
    let now = chrono::Utc::now();
    let rows = page
        .rows
        .iter()
        .map(|v| {
            let mark = if v["id"] == latest["latestVersionId"] {
                "*"
            } else {
                ""
            };
            vec![
                mark.to_owned(),
                v["id"].as_str().unwrap_or("?").to_owned(),
                v["kind"].as_str().unwrap_or("?").to_owned(),
                output::status(v["status"].as_str().unwrap_or("?")),
                v["parentVersionId"].as_str().unwrap_or("-").to_owned(),
                output::ago(&v["createdAt"], now),
                if v["pinned"] == true { "pinned" } else { "" }.to_owned(),
            ]
        })
        .collect();
    output::table(&["", "VERSION", "KIND", "STATUS", "PARENT", "AGE", ""], 4, rows);
    output::more(page.next.as_deref(), &format!("kiln versions {project}"));
    Ok(())
}

pub(super) async fn rollback(
    client: &Client,
    project: &str,
    version: &str,
    json_out: bool,
) -> anyhow::Result<()> {
    let body = json!({ "versionId": version });
    let answer = client
        .ok("POST", &project_path(project, &["rollback"])?, Some(&body))
        .await?;
    if json_out {
        line(&answer.to_string());
    } else {
        line(&format!(
            "rolled back to {}",
            answer["rolledBackTo"].as_str().unwrap_or("?")
        ));
        print_build(&answer["version"]);
    }
    Ok(())
}

pub(super) async fn diff(
    client: &Client,
    project: &str,
    a: &str,
    b: &str,
    stat: bool,
    json_out: bool,
) -> anyhow::Result<()> {
    let base = project_path(project, &["versions", a, "diff", b])?;
    if !(stat || json_out) {
        let text = client.raw_ok(&format!("{base}?mode=patch")).await?.text().await?;
        output::text(&output::colour_diff(&text));
        return Ok(());
    }
    let d = client.ok("GET", &format!("{base}?mode=stat"), None).await?;
    if json_out {
        line(&d.to_string());
        return Ok(());
    }
    for f in d["files"].as_array().into_iter().flatten() {
        let counts = if f["binary"] == true {
            "binary".to_owned()
        } else {
            format!("+{} -{}", f["additions"], f["deletions"])
        };
        let (change, path) = (
            f["change"].as_str().unwrap_or("?"),
            f["path"].as_str().unwrap_or("?"),
        );
        line(&format!("{change:<9} {counts:<14} {path}"));
    }
    let s = &d["summary"];
    line(&format!(
        "{} added, {} removed, {} modified; +{} -{} lines",
        s["added"], s["removed"], s["modified"], s["additions"], s["deletions"]
    ));
    Ok(())
}

pub(super) async fn download(
    client: &Client,
    version: &str,
    output: Option<PathBuf>,
    source: bool,
    json_out: bool,
) -> anyhow::Result<()> {
    let v = client.ok("GET", &path(&["v1", "builds", version]), None).await?;
    let (user, project, id) = (
        v["userId"].as_str().context("no userId")?,
        v["projectId"].as_str().context("no projectId")?,
        v["id"].as_str().context("no id")?,
    );
    let artifact = path(&["v1", "projects", user, project, "versions", id, "artifact"]);
    let query = if source { "?source=true" } else { "" };
    let mut res = client.raw_ok(&format!("{artifact}{query}")).await?;
    let suffix = if source { "-source" } else { "" };
    let path = output.unwrap_or_else(|| PathBuf::from(format!("{project}-{id}{suffix}.zip")));
    let mut file = tokio::fs::File::create(&path)
        .await
        .with_context(|| format!("creating {}", path.display()))?;
    let mut written = 0u64;
    while let Some(chunk) = res.chunk().await? {
        file.write_all(&chunk).await?;
        written += chunk.len() as u64;
    }
    file.flush().await?;
    if json_out {
        line(&json!({ "path": path, "bytes": written }).to_string());
    } else {
        line(&format!("wrote {} ({written} bytes)", path.display()));
    }
    Ok(())
}
