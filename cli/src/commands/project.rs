//! One project: `kiln project show` (settings, environment names, latest, counts), and share
//! links of private previews: `kiln share <user>/<project> [--version V] [--ttl 7d]`,
//! `kiln share revoke <user>/<project>`.

use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::projects::project_path;
use crate::args::{ProjectCommand, ShareCommand, ShareLink};
use crate::client::Client;
use crate::output::{self, line};

/// The longest a share link lives (the API's limit).
const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// `kiln project show|delete <user>/<project>` (deletion in [`super::lifecycle`]).
pub(super) async fn project(client: &Client, command: ProjectCommand, json_out: bool) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Show { project } => show(client, &project, json_out).await,
        delete @ ProjectCommand::Delete { .. } => {
            super::lifecycle::delete_project(client, delete, json_out).await
        }
    }
}

async fn show(client: &Client, project: &str, json_out: bool) -> anyhow::Result<()> {
    let p = client.ok("GET", &project_path(project, &[])?, None).await?;
    if json_out {
        line(&p.to_string());
        return Ok(());
    }
    let now = chrono::Utc::now();
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    line(&format!(
        "project   {}/{}",
        text(&p["userId"]),
        text(&p["projectId"])
    ));
    line(&format!("latest    {}", text(&p["latestVersionId"])));
    line(&format!("url       {}", text(&p["latestUrl"])));
    line(&format!("versions  {}", p["versions"]));
    if p["lastBuild"].is_object() {
        let b = &p["lastBuild"];
        line(&format!(
            "last      {} {} ({})",
            text(&b["id"]),
            output::status(b["status"].as_str().unwrap_or("?")),
            output::ago(&b["createdAt"], now)
        ));
    }
    line(&format!("active    {}", output::ago(&p["activeAt"], now)));
    let settings = p["settings"].as_object().cloned().unwrap_or_default();
    if settings.is_empty() {
        line("settings  (Kiln's defaults)");
    } else {
        line("settings");
        for (name, value) in &settings {
            let shown = value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            line(&format!("  {name:<15} {shown}"));
        }
    }
    let env = p["env"].as_array().cloned().unwrap_or_default();
    if env.is_empty() {
        line("env       (none)");
    } else {
        line("env");
        for v in &env {
            let kind = if v["secret"] == true { "secret" } else { "plain" };
            line(&format!("  {:<30} {kind}", text(&v["name"])));
        }
    }
    Ok(())
}

pub(super) async fn share(
    client: &Client,
    command: Option<ShareCommand>,
    link: ShareLink,
    json_out: bool,
) -> anyhow::Result<()> {
    if let Some(ShareCommand::Revoke { project }) = command {
        let answer = client
            .ok("DELETE", &project_path(&project, &["share-links"])?, None)
            .await?;
        if json_out {
            line(&answer.to_string());
        } else {
            line(&format!("revoked every share link of {project}"));
        }
        return Ok(());
    }
    let Some(project) = link.project else {
        bail!("which project? kiln share <user>/<project> [--version ID] [--ttl 7d]");
    };
    let ttl = ttl_secs(&link.ttl)?;
    let mut body = json!({ "ttlSecs": ttl });
    if let Some(v) = &link.version {
        body["versionId"] = json!(v);
    }
    let answer = client
        .ok("POST", &project_path(&project, &["share-links"])?, Some(&body))
        .await?;
    if json_out {
        line(&answer.to_string());
    } else {
        line(answer["url"].as_str().unwrap_or("?"));
        line(&format!(
            "expires {}",
            answer["expiresAt"].as_str().unwrap_or("?")
        ));
    }
    Ok(())
}

/// `--ttl` in seconds: a human duration (`humantime`: `30m`, `12h`, `7d`, `1w 2d`) of 1 second
/// to 30 days.
fn ttl_secs(raw: &str) -> anyhow::Result<u64> {
    let d = humantime::parse_duration(raw.trim())
        .with_context(|| format!("--ttl {raw:?} is not a duration such as 30m, 12h or 7d"))?;
    if d < Duration::from_secs(1) || d > MAX_TTL {
        bail!("--ttl must be between 1s and 30d, not {raw}");
    }
    Ok(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_human_durations_of_at_most_30_days() {
        assert_eq!(ttl_secs("30m").unwrap(), 1800);
        assert_eq!(ttl_secs("12h").unwrap(), 43_200);
        assert_eq!(ttl_secs("7d").unwrap(), 604_800);
        assert_eq!(ttl_secs("30d").unwrap(), 2_592_000);
        assert!(ttl_secs("31d")
            .unwrap_err()
            .to_string()
            .contains("between 1s and 30d"));
        assert!(ttl_secs("0s").is_err());
        assert!(ttl_secs("soon")
            .unwrap_err()
            .to_string()
            .contains("not a duration"));
    }
}
