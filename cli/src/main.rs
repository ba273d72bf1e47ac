//! `kiln`: the command-line client of a Kiln farm.
//!
//! Reads `KILN_URL` (default `http://127.0.0.1:8080`) and either `KILN_TOKEN` (a bearer token)
//! or `KILN_HMAC_SECRET` (signs requests as the product back end).

// A command-line tool prints its results.
#![allow(clippy::print_stdout)]

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::json;
use tokio::io::AsyncWriteExt;

mod args;
mod client;
mod show;
mod watch;

use args::{Cli, Command, TokenCommand};
use client::{ApiFailure, Client};
use show::{colour_diff, print_build};

/// `<user>/<project>` as the path of the API.
fn project_path(raw: &str) -> anyhow::Result<String> {
    match raw.split_once('/') {
        Some((u, p)) if !u.is_empty() && !p.is_empty() && !p.contains('/') => {
            Ok(format!("/v1/projects/{u}/{p}"))
        }
        _ => bail!("expected <user>/<project>, got {raw:?}"),
    }
}

/// `kiln token ...`
async fn token(client: &Client, command: TokenCommand, json_out: bool) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { user, name } => {
            let body = json!({ "userId": user, "description": name });
            let (status, made) = client.send("POST", "/v1/tokens", Some(&body)).await?;
            if !(200..300).contains(&status) {
                let failure = ApiFailure::of(status, &made);
                if failure.code() == Some("not_found") {
                    bail!(
                        "{failure}; only an operator token (KILN_API_TOKENS) or the back end's secret can make tokens"
                    );
                }
                return Err(failure.into());
            }
            if json_out {
                println!("{made}");
                return Ok(());
            }
            println!("token    {}", made["token"].as_str().unwrap_or("?"));
            println!("id       {}", made["id"].as_str().unwrap_or("?"));
            println!("user     {}", made["userId"].as_str().unwrap_or("?"));
            if let Some(name) = made["description"].as_str() {
                println!("name     {name}");
            }
            eprintln!("Keep the token now: Kiln stores only its hash and cannot show it again.");
        }
        TokenCommand::List { user } => {
            let query = user
                .map(|u| {
                    format!(
                        "?userId={}",
                        url::form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>()
                    )
                })
                .unwrap_or_default();
            let list = client.ok("GET", &format!("/v1/tokens{query}"), None).await?;
            if json_out {
                println!("{list}");
                return Ok(());
            }
            println!(
                "{:<26}  {:<20}  {:<19}  {:<19}  NAME",
                "ID", "USER", "CREATED", "REVOKED"
            );
            for t in list["tokens"].as_array().into_iter().flatten() {
                let time = |field: &str| {
                    t[field]
                        .as_str()
                        .and_then(|s| s.get(..19))
                        .unwrap_or("-")
                        .to_owned()
                };
                println!(
                    "{:<26}  {:<20}  {:<19}  {:<19}  {}",
                    t["id"].as_str().unwrap_or("?"),
                    t["userId"].as_str().unwrap_or("?"),
                    time("createdAt"),
                    time("revokedAt"),
                    t["description"].as_str().unwrap_or("")
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
            let revoked = client.ok("DELETE", &format!("/v1/tokens/{id}"), None).await?;
            if json_out {
                println!("{revoked}");
            } else {
                println!(
                    "revoked  {} (user {}, at {})",
                    revoked["id"].as_str().unwrap_or("?"),
                    revoked["userId"].as_str().unwrap_or("?"),
                    revoked["revokedAt"].as_str().unwrap_or("?")
                );
            }
        }
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let client = Client {
        // Idle connections are dropped before the API's keep-alive (5 s) closes them, so a
        // `--follow` that polls never reuses a connection the server is closing.
        http: reqwest::Client::builder()
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()?,
        url: cli.url,
        token: cli.token,
        hmac_secret: cli.hmac_secret,
    };
    match cli.command {
        Command::Submit {
            dir,
            user,
            project,
            prompt,
            base,
            wait: should_wait,
            logs,
        } => {
            let files =
                kiln_shared::domain::read_tree(&dir).with_context(|| format!("reading {}", dir.display()))?;
            if files.is_empty() {
                bail!("{} has no files", dir.display());
            }
            let body = json!({ "userId": user, "projectId": project, "prompt": prompt,
                               "baseVersionId": base, "files": files });
            let queued = client.ok("POST", "/v1/builds", Some(&body)).await?;
            let id = queued["buildId"]
                .as_str()
                .context("the answer has no buildId")?
                .to_owned();
            if should_wait {
                if !cli.json {
                    eprintln!(
                        "queued {id} ({} files)",
                        body["files"].as_array().map_or(0, Vec::len)
                    );
                }
                return watch::watch(&client, &id, logs, cli.json).await;
            }
            if cli.json {
                println!("{queued}");
            } else {
                println!("queued   {id}");
                println!("status   {}", queued["statusUrl"].as_str().unwrap_or_default());
                println!(
                    "preview  {} (once deployed)",
                    queued["previewUrl"].as_str().unwrap_or_default()
                );
            }
        }
        Command::Watch { id, logs } => return watch::watch(&client, &id, logs, cli.json).await,
        Command::Token { command } => token(&client, command, cli.json).await?,
        Command::Status { id } => {
            let b = client.ok("GET", &format!("/v1/builds/{id}"), None).await?;
            if cli.json {
                println!("{b}");
            } else {
                print_build(&b);
            }
        }
        Command::Cancel { id } => {
            let b = client
                .ok("POST", &format!("/v1/builds/{id}/cancel"), Some(&json!({})))
                .await?;
            if cli.json {
                println!("{b}");
            } else {
                print_build(&b);
            }
        }
        Command::Retry { id, wait } => {
            let q = client
                .ok("POST", &format!("/v1/builds/{id}/retry"), Some(&json!({})))
                .await?;
            let new = q["buildId"].as_str().unwrap_or_default().to_owned();
            if cli.json && !wait {
                println!("{q}");
            } else if !cli.json {
                println!("retrying {id} as {new}");
            }
            if wait {
                return watch::watch(&client, &new, false, cli.json).await;
            }
        }
        Command::Versions { project } => {
            let base = project_path(&project)?;
            let page = client.ok("GET", &format!("{base}/versions"), None).await?;
            let latest = client.send("GET", &format!("{base}/latest"), None).await?.1;
            if cli.json {
                println!("{page}");
            } else {
                println!(
                    "  {:<26}  {:<8}  {:<9}  {:<26}  {:<19}",
                    "VERSION", "KIND", "STATUS", "PARENT", "CREATED"
                );
                for v in page["versions"].as_array().into_iter().flatten() {
                    let mark = if v["id"] == latest["latestVersionId"] {
                        "*"
                    } else {
                        " "
                    };
                    let pin = if v["pinned"] == true { "  pinned" } else { "" };
                    println!(
                        "{mark} {:<26}  {:<8}  {:<9}  {:<26}  {:<19}{pin}",
                        v["id"].as_str().unwrap_or("?"),
                        v["kind"].as_str().unwrap_or("?"),
                        v["status"].as_str().unwrap_or("?"),
                        v["parentVersionId"].as_str().unwrap_or("-"),
                        v["createdAt"].as_str().and_then(|t| t.get(..19)).unwrap_or("?"),
                    );
                }
            }
        }
        Command::Rollback { project, version } => {
            let base = project_path(&project)?;
            let body = json!({ "versionId": version });
            let answer = client
                .ok("POST", &format!("{base}/rollback"), Some(&body))
                .await?;
            if cli.json {
                println!("{answer}");
            } else {
                println!(
                    "rolled back to {}",
                    answer["rolledBackTo"].as_str().unwrap_or("?")
                );
                print_build(&answer["version"]);
            }
        }
        Command::Diff { project, a, b, stat } => {
            let base = project_path(&project)?;
            if stat || cli.json {
                let d = client
                    .ok("GET", &format!("{base}/versions/{a}/diff/{b}?mode=stat"), None)
                    .await?;
                if cli.json {
                    println!("{d}");
                } else {
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
                        println!("{change:<9} {counts:<14} {path}");
                    }
                    let s = &d["summary"];
                    println!(
                        "{} added, {} removed, {} modified; +{} -{} lines",
                        s["added"], s["removed"], s["modified"], s["additions"], s["deletions"]
                    );
                }
            } else {
                let text = client
                    .raw_ok(&format!("{base}/versions/{a}/diff/{b}?mode=patch"))
                    .await?
                    .text()
                    .await?;
                if std::io::stdout().is_terminal() {
                    print!("{}", colour_diff(&text));
                } else {
                    print!("{text}");
                }
            }
        }
        Command::Download {
            version,
            output,
            source,
        } => {
            let v = client.ok("GET", &format!("/v1/builds/{version}"), None).await?;
            let (user, project, id) = (
                v["userId"].as_str().context("no userId")?,
                v["projectId"].as_str().context("no projectId")?,
                v["id"].as_str().context("no id")?,
            );
            let query = if source { "?source=true" } else { "" };
            let mut res = client
                .raw_ok(&format!(
                    "/v1/projects/{user}/{project}/versions/{id}/artifact{query}"
                ))
                .await?;
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
            if cli.json {
                println!("{}", json!({ "path": path, "bytes": written }));
            } else {
                println!("wrote {} ({written} bytes)", path.display());
            }
        }
        Command::List {
            user,
            project,
            status,
            limit,
        } => {
            let mut query = url::form_urlencoded::Serializer::new(String::from("?"));
            query.append_pair("limit", &limit.to_string());
            for (k, v) in [("userId", user), ("projectId", project), ("status", status)] {
                if let Some(v) = v {
                    query.append_pair(k, &v);
                }
            }
            let query = query.finish();
            let page = client.ok("GET", &format!("/v1/builds{query}"), None).await?;
            if cli.json {
                println!("{page}");
            } else {
                println!(
                    "{:<26}  {:<9}  {:<30}  {:>8}",
                    "BUILD", "STATUS", "PROJECT", "TOOK"
                );
                for b in page["builds"].as_array().into_iter().flatten() {
                    let took = b["metrics"]["totalMs"]
                        .as_i64()
                        .map(|ms| format!("{:.1}s", ms as f64 / 1000.0));
                    println!(
                        "{:<26}  {:<9}  {:<30}  {:>8}",
                        b["id"].as_str().unwrap_or("?"),
                        b["status"].as_str().unwrap_or("?"),
                        format!(
                            "{}/{}",
                            b["userId"].as_str().unwrap_or("?"),
                            b["projectId"].as_str().unwrap_or("?")
                        ),
                        took.unwrap_or_else(|| "-".into()),
                    );
                }
            }
        }
    }
    Ok(true)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("kiln: {e:#}");
            ExitCode::from(2)
        }
    }
}
