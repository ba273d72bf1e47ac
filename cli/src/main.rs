//! `kiln`: the command-line client of a Kiln farm.
//!
//! Reads `KILN_URL` (default `http://127.0.0.1:8080`) and either `KILN_TOKEN` (a bearer token)
//! or `KILN_HMAC_SECRET` (signs requests as the product back end).

// A command-line tool prints its results.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Submit, watch and list builds on a Kiln farm"
)]
struct Cli {
    /// The API's URL.
    #[arg(
        long,
        env = "KILN_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// A bearer token (operators and people).
    #[arg(long, env = "KILN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// The HMAC secret of the product back end (used when no token is given).
    #[arg(long, env = "KILN_HMAC_SECRET", hide_env_values = true, global = true)]
    hmac_secret: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    },
    /// Show one build.
    Status { id: String },
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

struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    hmac_secret: Option<String>,
}

impl Client {
    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
        let raw = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = self
            .http
            .request(
                method.parse()?,
                format!("{}{path}", self.url.trim_end_matches('/')),
            )
            .header("Content-Type", "application/json")
            .body(raw.clone());
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        } else if let Some(secret) = &self.hmac_secret {
            let ts = chrono::Utc::now().timestamp();
            let sig = kiln_shared::signing::sign_request(secret.as_bytes(), ts, method, path, raw.as_bytes());
            req = req
                .header("X-Kiln-Timestamp", ts.to_string())
                .header("X-Kiln-Signature", sig);
        } else {
            bail!("no credentials: set KILN_TOKEN (or KILN_HMAC_SECRET)");
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        let status = res.status().as_u16();
        let json = res.json().await.unwrap_or(Value::Null);
        Ok((status, json))
    }

    async fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let (status, json) = self.send(method, path, body).await?;
        if !(200..300).contains(&status) {
            let error = json["error"].as_str().unwrap_or("no details");
            match json["buildId"].as_str() {
                Some(id) => bail!("{status}: {error} (build {id})"),
                None => bail!("{status}: {error}"),
            }
        }
        Ok(json)
    }
}

fn print_build(b: &Value) {
    println!("build    {}", b["id"].as_str().unwrap_or("?"));
    println!(
        "project  {}/{}",
        b["userId"].as_str().unwrap_or("?"),
        b["projectId"].as_str().unwrap_or("?")
    );
    println!("status   {}", b["status"].as_str().unwrap_or("?"));
    if let Some(url) = b["previewUrl"].as_str() {
        println!("preview  {url}");
    }
    if let Some(url) = b["latestUrl"].as_str() {
        println!("latest   {url}");
    }
    if let Some(ms) = b["metrics"]["totalMs"].as_i64() {
        println!("took     {:.1} s", ms as f64 / 1000.0);
    }
    if let Some(e) = b["error"].as_str() {
        println!("failed   at {}: {e}", b["failedStep"].as_str().unwrap_or("?"));
    }
}

async fn wait(client: &Client, id: &str, json: bool) -> anyhow::Result<bool> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let b = client.ok("GET", &format!("/v1/builds/{id}"), None).await?;
        let status = b["status"].as_str().unwrap_or("?").to_owned();
        if !json && status != last {
            eprintln!("[{:>5.1}s] {status}", started.elapsed().as_secs_f64());
            last = status.clone();
        }
        if status == "deployed" || status == "failed" {
            if json {
                println!("{b}");
            } else {
                print_build(&b);
            }
            return Ok(status == "deployed");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let client = Client {
        http: reqwest::Client::new(),
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
                return wait(&client, &id, cli.json).await;
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
        Command::Status { id } => {
            let b = client.ok("GET", &format!("/v1/builds/{id}"), None).await?;
            if cli.json {
                println!("{b}");
            } else {
                print_build(&b);
            }
        }
        Command::List {
            user,
            project,
            status,
            limit,
        } => {
            let mut query = format!("?limit={limit}");
            for (k, v) in [("userId", user), ("projectId", project), ("status", status)] {
                if let Some(v) = v {
                    query.push_str(&format!("&{k}={v}"));
                }
            }
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
