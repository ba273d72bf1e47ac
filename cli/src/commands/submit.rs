//! `kiln submit`: a project folder's files (what [`crate::collect`] keeps), or only a prompt,
//! as a new build of the project named on the command line or by the folder's `kiln link`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::json;

use super::outcome::Outcome;
use crate::client::Client;
use crate::link::Link;
use crate::output::line;

/// What `kiln submit` was given.
pub(super) struct Submission {
    pub(super) dir: Option<PathBuf>,
    pub(super) user: Option<String>,
    pub(super) project: Option<String>,
    pub(super) prompt: Option<String>,
    pub(super) base: Option<String>,
    /// Build even when a deployed version is identical.
    pub(super) force: bool,
}

pub(super) async fn submit(
    client: &Client,
    s: Submission,
    wait: bool,
    logs: bool,
    json_out: bool,
) -> anyhow::Result<Outcome> {
    // No folder with a prompt: the generator writes the files; the link is the current folder's.
    let only_prompt = s.dir.is_none() && s.prompt.is_some();
    let dir = s.dir.unwrap_or_else(|| PathBuf::from("."));
    let link = match (&s.user, &s.project) {
        (Some(_), Some(_)) => None,
        _ => Link::read(&dir)?,
    };
    let user = s.user.or_else(|| link.as_ref().map(|l| l.user.clone()));
    let project = s.project.or_else(|| link.as_ref().map(|l| l.project.clone()));
    let (Some(user), Some(project)) = (user, project) else {
        bail!(
            "which project? give --user and --project, or run `kiln link <user>/<project>` in {}",
            dir.display()
        );
    };
    let mut body = json!({ "userId": user, "projectId": project, "prompt": s.prompt,
                           "baseVersionId": s.base });
    if s.force {
        body["force"] = json!(true);
    }
    let mut count = 0;
    if !only_prompt {
        let files = crate::collect::collect(&dir).with_context(|| format!("reading {}", dir.display()))?;
        if files.is_empty() {
            bail!("{} has no files", dir.display());
        }
        count = files.len();
        body["files"] = serde_json::to_value(files)?;
    }
    let queued = client.ok("POST", "/v1/builds", Some(&body)).await?;
    let id = queued["buildId"]
        .as_str()
        .context("the answer has no buildId")?
        .to_owned();
    if wait {
        if !json_out {
            if only_prompt {
                eprintln!("queued {id} (a prompt for the generator)");
            } else {
                eprintln!("queued {id} ({count} files)");
            }
        }
        return super::builds::watch(client, &id, logs, json_out).await;
    }
    if json_out {
        line(&queued.to_string());
    } else {
        line(&format!("queued   {id}"));
        line(&format!(
            "status   {}",
            queued["statusUrl"].as_str().unwrap_or_default()
        ));
        line(&format!(
            "preview  {} (once deployed)",
            queued["previewUrl"].as_str().unwrap_or_default()
        ));
    }
    Ok(Outcome::Success)
}
