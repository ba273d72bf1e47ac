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
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

mod watch;

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
        /// With --wait: stream the build's log lines too.
        #[arg(long, requires = "wait")]
        logs: bool,
    },
    /// Follow a build live: a progress bar with the current step (and its log with --logs)
    /// until it ends; exits non-zero when it fails.
    Watch {
        id: String,
        /// Stream the build's log lines (stdout) beside the progress (stderr).
        #[arg(long)]
        logs: bool,
    },
    /// Show one build.
    Status { id: String },
    /// Cancel a queued or running build (its processes are stopped; the project is free at once).
    Cancel { id: String },
    /// Queue a failed or cancelled build again, with the same sources.
    Retry {
        id: String,
        /// Show progress until the new build ends.
        #[arg(long)]
        wait: bool,
    },
    /// A project's versions, newest first (`*` marks the latest).
    Versions {
        /// `<user>/<project>`
        project: String,
    },
    /// Make an earlier (or later) deployed version the project's latest, instantly.
    Rollback {
        /// `<user>/<project>`
        project: String,
        version: String,
    },
    /// Compare the sources of two versions (a unified diff, or a summary with --stat).
    Diff {
        /// `<user>/<project>`
        project: String,
        a: String,
        b: String,
        #[arg(long)]
        stat: bool,
    },
    /// Download a zip of a version's output (or, with --source, its sources).
    Download {
        version: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long)]
        source: bool,
    },
    /// User tokens: make one for a user (shown once), list a user's, revoke one.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
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

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token for a user (with an operator token or the back end's secret). It is printed
    /// once: Kiln keeps only its hash.
    Create {
        #[arg(long)]
        user: String,
        /// What the token is for (kept as its description), e.g. "laptop".
        #[arg(long, visible_alias = "description")]
        name: Option<String>,
    },
    /// A user's tokens, newest first (never the tokens themselves); with a user token, its own
    /// user's.
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by its id: it stops working at once, on every API instance.
    Revoke { id: String },
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    hmac_secret: Option<String>,
}

impl Client {
    /// A request with credentials; the raw response.
    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<reqwest::Response> {
        self.prepare(method, path, body)?
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))
    }

    /// An event stream (`text/event-stream`), resumed after `last_id` when given.
    async fn stream(&self, path: &str, last_id: Option<&str>) -> anyhow::Result<reqwest::Response> {
        let mut req = self.prepare("GET", path, None)?;
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        let status = res.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(res);
        }
        let json = res.json().await.unwrap_or(Value::Null);
        Err(api_error(status, &json))
    }

    fn prepare(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
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
            // A nonce of its own: the API accepts a signature that changes something once.
            let nonce = kiln_shared::signing::nonce();
            let sig = kiln_shared::signing::sign_request_with_nonce(
                secret.as_bytes(),
                ts,
                &nonce,
                method,
                path,
                raw.as_bytes(),
            );
            req = req
                .header("X-Kiln-Timestamp", ts.to_string())
                .header("X-Kiln-Nonce", nonce)
                .header("X-Kiln-Signature", sig);
        } else {
            bail!("no credentials: set KILN_TOKEN (or KILN_HMAC_SECRET)");
        }
        Ok(req)
    }

    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<(u16, Value)> {
        let res = self.request(method, path, body).await?;
        let status = res.status().as_u16();
        let json = res.json().await.unwrap_or(Value::Null);
        Ok((status, json))
    }

    async fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let (status, json) = self.send(method, path, body).await?;
        if !(200..300).contains(&status) {
            return Err(api_error(status, &json));
        }
        Ok(json)
    }

    /// A successful response whose body is not JSON (a diff, a zip).
    async fn raw_ok(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let res = self.request("GET", path, None).await?;
        let status = res.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(res);
        }
        let json = res.json().await.unwrap_or(Value::Null);
        Err(api_error(status, &json))
    }
}

/// The error of a non-2xx answer: its status and `error`, and the build it names.
fn api_error(status: u16, json: &Value) -> anyhow::Error {
    let error = json["error"].as_str().unwrap_or("no details");
    match json["buildId"].as_str() {
        Some(id) => anyhow::anyhow!("{status}: {error} (build {id})"),
        None => anyhow::anyhow!("{status}: {error}"),
    }
}

/// `<user>/<project>` as the path of the API.
fn project_path(raw: &str) -> anyhow::Result<String> {
    match raw.split_once('/') {
        Some((u, p)) if !u.is_empty() && !p.is_empty() && !p.contains('/') => {
            Ok(format!("/v1/projects/{u}/{p}"))
        }
        _ => bail!("expected <user>/<project>, got {raw:?}"),
    }
}

/// Colours a unified diff for a terminal.
fn colour_diff(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.lines() {
        let code = if line.starts_with("diff --git") || line.starts_with("+++") || line.starts_with("---") {
            "1"
        } else if line.starts_with('+') {
            "32"
        } else if line.starts_with('-') {
            "31"
        } else if line.starts_with("@@") {
            "36"
        } else {
            ""
        };
        if code.is_empty() {
            out.push_str(line);
        } else {
            out.push_str(&format!("\x1b[{code}m{line}\x1b[0m"));
        }
        out.push('\n');
    }
    out
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

/// `kiln token ...`
async fn token(client: &Client, command: TokenCommand, json_out: bool) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { user, name } => {
            let body = json!({ "userId": user, "description": name });
            let (status, made) = client.send("POST", "/v1/tokens", Some(&body)).await?;
            if status == 404 {
                bail!(
                    "{}; only an operator token (KILN_API_TOKENS) or the back end's secret can make tokens",
                    api_error(status, &made)
                );
            }
            if !(200..300).contains(&status) {
                return Err(api_error(status, &made));
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
