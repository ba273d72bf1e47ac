//! The `kiln` binary against a real farm (API + builder in-process, real services).

#[allow(dead_code)]
#[path = "../../api/tests/api/helpers.rs"]
mod helpers;

use helpers::{spawn_app, unique, Options, HMAC_SECRET, TOKEN};
use serde_json::Value;

/// `kiln`'s exit codes: an error, a usage error (clap's), a build that did not deploy.
const ERROR: i32 = 1;
const USAGE: i32 = 2;
const NOT_DEPLOYED: i32 = 3;

fn kiln(api: &str, creds: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.env_clear()
        .env("KILN_URL", api)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    for (k, v) in creds {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kiln` run off the async runtime (the API it talks to runs on it).
async fn kiln_async(
    api: &str,
    creds: &[(&'static str, &'static str)],
    args: &[&str],
) -> (i32, String, String) {
    let (api, creds) = (api.to_owned(), creds.to_vec());
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kiln(&api, &creds, &args)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn submit_wait_status_and_list() {
    let app = spawn_app(Options::default()).await;
    let project = unique("cli");
    let submit = [
        "submit",
        "examples/static-site",
        "--user",
        "cli_user",
        "--project",
        &project,
        "--wait",
        "--json",
    ];
    let (code, out, err) = kiln_async(&app.api, &[("KILN_TOKEN", TOKEN)], &submit).await;
    assert_eq!(code, 0, "{out}{err}");
    // The build's events as JSON lines, then the build.
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["type"], "build_queued", "{out}");
    let build = lines.last().unwrap();
    assert_eq!(build["status"], "deployed");
    let id = build["id"].as_str().unwrap().to_owned();
    assert_eq!(app.preview(&id, "/").await.status(), 200);

    let (code, out, _) = kiln_async(&app.api, &[("KILN_HMAC_SECRET", HMAC_SECRET)], &["status", &id]).await;
    assert_eq!(code, 0);
    assert!(out.contains("status   deployed"), "{out}");
    assert!(out.contains("preview  http://"), "{out}");

    let (code, out, _) = kiln_async(
        &app.api,
        &[("KILN_TOKEN", TOKEN)],
        &["list", "--user", "cli_user"],
    )
    .await;
    assert_eq!(code, 0);
    assert!(out.lines().next().unwrap().starts_with("BUILD"));
    assert!(out.contains(&format!("cli_user/{project}")), "{out}");
}

/// `kiln status` of a failed build prints its diagnostics as `file:line:col message [code]`.
#[tokio::test]
async fn status_prints_a_failed_builds_diagnostics_where_they_are() {
    let app = spawn_app(Options::default()).await;
    let creds = [("KILN_TOKEN", TOKEN)];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("package.json"),
        "{\n  \"name\": \"p\",\n  \"engines\": {\n    \"node\": \">=99\"\n  }\n}\n",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let submit = [
        "submit",
        path,
        "--user",
        "cli_diag",
        "--project",
        "engines",
        "--wait",
    ];
    let (code, out, err) = kiln_async(&app.api, &creds, &submit).await;
    assert_eq!(code, NOT_DEPLOYED, "{out}{err}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("build    "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    let (code, out, err) = kiln_async(&app.api, &creds, &["status", &id]).await;
    assert_eq!(code, 0, "status reports; {out}{err}");
    assert!(
        out.contains("failed   at install: package.json's engines.node asks for"),
        "{out}"
    );
    assert!(
        out.contains("         package.json:4 package.json's engines.node asks for Node \">=99\""),
        "{out}"
    );
    assert!(out.contains("[engines_node]"), "{out}");
}

#[tokio::test]
async fn failures_exit_non_zero_with_the_reason() {
    let app = spawn_app(Options::without_builders()).await;
    let (code, _, err) = kiln_async(&app.api, &[], &["list"]).await;
    assert_eq!(code, ERROR);
    assert!(err.contains("no credentials"), "{err}");

    let status = ["status", "01jabcdefghjkmnpqrstvwxyz0"];
    let (code, _, err) = kiln_async(&app.api, &[("KILN_TOKEN", "wrong")], &status).await;
    assert_eq!(code, ERROR);
    assert!(err.contains("401: the bearer token is not valid"), "{err}");

    let submit = [
        "submit",
        "examples/static-site",
        "--user",
        "bad user",
        "--project",
        "p",
    ];
    let (code, _, err) = kiln_async(&app.api, &[("KILN_TOKEN", TOKEN)], &submit).await;
    assert_eq!(code, ERROR);
    assert!(err.contains("422: userId must be"), "{err}");
}

#[tokio::test]
async fn versions_rollback_diff_and_download() {
    let app = spawn_app(Options::default()).await;
    let project = unique("cli-v");
    let user = "cli_v";
    let body = helpers::build_body(user, &project, helpers::tree("examples/static-site"));
    let v1 = app.submit(&body).await;
    assert_eq!(app.wait(&v1).await["status"], "deployed");
    let change = serde_json::json!({ "userId": user, "projectId": project,
        "files": [{ "path": "index.html", "content": "<h1>second</h1>\n" }] });
    let v2 = app.submit(&change).await;
    assert_eq!(app.wait(&v2).await["status"], "deployed");
    let target = format!("{user}/{project}");
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("out.zip");

    let api = app.api.clone();
    let (v1c, v2c, t, z) = (v1.clone(), v2.clone(), target.clone(), zip_path.clone());
    let outputs = tokio::task::spawn_blocking(move || {
        let creds = [("KILN_TOKEN", TOKEN)];
        vec![
            kiln(&api, &creds, &["diff", &t, &v1c, &v2c]),
            kiln(&api, &creds, &["diff", &t, &v1c, &v2c, "--stat"]),
            kiln(&api, &creds, &["rollback", &t, &v1c]),
            kiln(&api, &creds, &["versions", &t]),
            kiln(&api, &creds, &["download", &v2c, "-o", z.to_str().unwrap()]),
            kiln(&api, &creds, &["versions", "no-slash"]),
        ]
    })
    .await
    .unwrap();
    let (code, patch, _) = &outputs[0];
    assert_eq!(*code, 0);
    assert!(patch.contains("+<h1>second</h1>"), "{patch}");
    assert!(
        !patch.contains("\x1b["),
        "no colour when stdout is not a terminal"
    );
    let (_, stat, _) = &outputs[1];
    assert!(stat.contains("modified  +1 -"), "{stat}");
    let (code, rolled, err) = &outputs[2];
    assert_eq!(*code, 0, "{err}");
    assert!(rolled.contains(&format!("rolled back to {v1}")), "{rolled}");
    let (_, listing, _) = &outputs[3];
    let first = listing.lines().nth(1).unwrap();
    assert!(first.starts_with("* ") && first.contains("rollback"), "{listing}");
    let (code, wrote, err) = &outputs[4];
    assert_eq!(*code, 0, "{err}");
    assert!(wrote.starts_with("wrote "), "{wrote}");
    assert!(std::fs::metadata(&zip_path).unwrap().len() > 100);
    let (code, _, err) = &outputs[5];
    assert_eq!(*code, ERROR);
    assert!(err.contains("expected <user>/<project>"), "{err}");
}

#[tokio::test]
async fn project_show_and_share_links() {
    let app = spawn_app(Options::default()).await;
    let (user, project) = ("cli_share", unique("cli-share"));
    let body = helpers::build_body(user, &project, helpers::tree("examples/static-site"));
    let v1 = app.submit(&body).await;
    assert_eq!(app.wait(&v1).await["status"], "deployed");
    let target = format!("{user}/{project}");
    let (status, _) = app
        .send_json(
            "PATCH",
            &format!("/v1/projects/{target}"),
            &serde_json::json!({ "previewAccess": "private" }),
        )
        .await;
    assert_eq!(status, 200);

    let api = app.api.clone();
    let (v, t) = (v1.clone(), target.clone());
    let outputs = tokio::task::spawn_blocking(move || {
        let creds = [("KILN_TOKEN", TOKEN)];
        vec![
            kiln(&api, &creds, &["project", "show", &t]),
            kiln(&api, &creds, &["project", "show", &t, "--json"]),
            kiln(&api, &creds, &["share", &t, "--ttl", "12h"]),
            kiln(&api, &creds, &["share", &t, "--version", &v, "--json"]),
            kiln(&api, &creds, &["share", &t, "--ttl", "31d"]),
            kiln(&api, &creds, &["project", "show", "cli_share/never-made"]),
        ]
    })
    .await
    .unwrap();
    let (code, shown, err) = &outputs[0];
    assert_eq!(*code, 0, "{err}");
    assert!(shown.contains(&format!("project   {target}")), "{shown}");
    assert!(shown.contains(&format!("latest    {v1}")), "{shown}");
    assert!(shown.contains("versions  1"), "{shown}");
    assert!(shown.contains("previewAccess   private"), "{shown}");
    let (code, json, _) = &outputs[1];
    assert_eq!(*code, 0);
    let p: Value = serde_json::from_str(json).unwrap();
    assert_eq!(
        (p["versions"].as_i64(), p["latestVersionId"].as_str()),
        (Some(1), Some(v1.as_str()))
    );

    // The link opens the private preview: 302 with the cookie, then 200 with it.
    let (code, out, err) = &outputs[2];
    assert_eq!(*code, 0, "{err}");
    let mut lines = out.lines();
    let url = lines.next().unwrap().to_owned();
    assert!(url.contains("?kiln_share="), "{out}");
    let expires: chrono::DateTime<chrono::Utc> = lines
        .next()
        .unwrap()
        .strip_prefix("expires ")
        .unwrap()
        .parse()
        .unwrap();
    let left = expires - chrono::Utc::now();
    assert!(
        left > chrono::Duration::minutes(719) && left <= chrono::Duration::hours(12),
        "{left}"
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let open = |url: String, cookie: Option<String>| {
        let client = client.clone();
        let port = app.preview_port;
        async move {
            let rest = url.strip_prefix("http://").unwrap();
            let (host, path) = rest.split_once('/').unwrap();
            let label = host.split('.').next().unwrap();
            let mut req = client
                .get(format!("http://127.0.0.1:{port}/{path}"))
                .header("Host", format!("{label}.localhost"));
            if let Some(c) = cookie {
                req = req.header("Cookie", c);
            }
            req.send().await.unwrap()
        }
    };
    let res = open(url.clone(), None).await;
    assert_eq!(res.status(), 302);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let base = url.split('?').next().unwrap().to_owned();
    assert_eq!(open(base.clone(), Some(cookie.clone())).await.status(), 200);
    assert_eq!(open(base.clone(), None).await.status(), 401);
    let (code, scoped, err) = &outputs[3];
    assert_eq!(*code, 0, "{err}");
    let scoped: Value = serde_json::from_str(scoped).unwrap();
    assert!(
        scoped["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{v1}.")),
        "{scoped}"
    );
    assert!(scoped["expiresAt"].is_string());
    let (code, _, err) = &outputs[4];
    assert_eq!(*code, ERROR);
    assert!(err.contains("--ttl must be between 1s and 30d"), "{err}");
    let (code, _, err) = &outputs[5];
    assert_eq!(*code, ERROR);
    assert!(err.contains("not found"), "{err}");

    // Revoked: the cookie no longer opens it.
    let (code, out, err) =
        kiln_async(&app.api, &[("KILN_TOKEN", TOKEN)], &["share", "revoke", &target]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("revoked every share link of {target}")),
        "{out}"
    );
    assert_eq!(open(base, Some(cookie)).await.status(), 401);
    assert_eq!(open(url, None).await.status(), 401);
}

/// A project whose build prints a line, waits `ms`, then fails or writes its output.
fn project_dir(ms: u64, fail: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let end = if fail {
        "console.error('the bundler gave up'); process.exit(1);"
    } else {
        "require('fs').mkdirSync('dist'); require('fs').writeFileSync('dist/index.html', 'watched');"
    };
    std::fs::write(
        dir.path().join("package.json"),
        r#"{"name":"p","private":true,"scripts":{"build":"node build.js"}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("build.js"),
        format!("console.log('compiling the watched app'); setTimeout(() => {{ {end} }}, {ms});"),
    )
    .unwrap();
    dir
}

#[tokio::test]
async fn watch_streams_progress_and_logs_and_exits_non_zero_when_the_build_fails() {
    let app = spawn_app(Options::default()).await;
    let creds = [("KILN_TOKEN", TOKEN)];
    let failing = project_dir(200, true);
    let path = failing.path().to_str().unwrap();
    let submit = ["submit", path, "--user", "cli_watch", "--project", "failing"];
    let (code, out, err) = kiln_async(&app.api, &creds, &submit).await;
    assert_eq!(code, 0, "{out}{err}");
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    let (code, out, err) = kiln_async(&app.api, &creds, &["watch", &id, "--logs"]).await;
    assert_eq!(code, NOT_DEPLOYED, "{out}{err}");
    assert!(
        out.contains("compiling the watched app"),
        "log lines on stdout: {out}"
    );
    assert!(out.contains("the bundler gave up"), "{out}");
    assert!(out.contains("status   failed"), "{out}");
    assert!(
        out.contains("failed   at build: `pnpm run build` exited with status 1:"),
        "{out}"
    );
    assert!(err.contains("install_completed"), "progress on stderr: {err}");
    assert!(err.contains("build_failed: build failed"), "{err}");

    // `submit --wait --logs` is the same watcher.
    let ok = project_dir(100, false);
    let path = ok.path().to_str().unwrap();
    let submit = [
        "submit",
        path,
        "--user",
        "cli_watch",
        "--project",
        "ok",
        "--wait",
        "--logs",
    ];
    let (code, out, err) = kiln_async(&app.api, &creds, &submit).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("compiling the watched app"), "{out}");
    assert!(out.contains("status   deployed"), "{out}");
    assert!(err.contains("100%  deploy_completed: http://"), "{err}");
}

/// Forwards TCP connections to `target` and cuts each one after `life`.
async fn cutting_proxy(target: &str, life: std::time::Duration) -> String {
    let target = target.trim_start_matches("http://").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut inbound, _) = listener.accept().await.unwrap();
            let target = target.clone();
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                let _ =
                    tokio::time::timeout(life, tokio::io::copy_bidirectional(&mut inbound, &mut outbound))
                        .await;
            });
        }
    });
    url
}

#[tokio::test]
async fn watch_resumes_across_dropped_connections_without_missing_or_repeating_an_event() {
    let app = spawn_app(Options::default()).await;
    let dir = project_dir(4000, false);
    let files = kiln_shared::domain::read_tree(dir.path()).unwrap();
    let body = serde_json::json!({ "userId": "cli_watch", "projectId": unique("cut"), "files": files });
    let id = app.submit(&body).await;
    // Every connection through the proxy is cut after 700 ms: the watcher reconnects several
    // times while the build runs.
    let proxy = cutting_proxy(&app.api, std::time::Duration::from_millis(700)).await;
    let (code, out, err) = kiln_async(&proxy, &[("KILN_TOKEN", TOKEN)], &["watch", &id, "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("reconnecting"), "the connection was cut: {err}");
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (build, events) = lines.split_last().unwrap();
    assert_eq!(build["status"], "deployed", "{build}");
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    let stored = app.get_json(&format!("/v1/builds/{id}/events")).await;
    let expected: Vec<i64> = stored["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, expected, "every event exactly once, in order");
}

#[tokio::test]
async fn cancel_then_retry_with_wait() {
    let app = spawn_app(Options::without_builders()).await;
    let project = unique("cancel");
    let submit = [
        "submit",
        "examples/static-site",
        "--user",
        "cli_user",
        "--project",
        &project,
    ];
    let creds = [("KILN_TOKEN", TOKEN)];
    let (code, out, err) = kiln_async(&app.api, &creds, &submit).await;
    assert_eq!(code, 0, "{out}{err}");
    let id = out
        .split_whitespace()
        .find(|w| w.len() == 26)
        .unwrap_or_else(|| panic!("no build id in {out}"))
        .to_owned();
    let (code, out, err) = kiln_async(&app.api, &creds, &["cancel", &id]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("status   cancelled"), "{out}");

    let _builder = app.start_builder("cli-builder", |_| {});
    let (code, out, err) = kiln_async(&app.api, &creds, &["retry", &id, "--wait"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("retrying {id} as ")), "{out}");
    let (code, _, err) = kiln_async(&app.api, &creds, &["cancel", &id]).await;
    assert_eq!(code, 0, "cancelling a cancelled build again is fine: {err}");
}

#[tokio::test]
async fn token_create_list_and_revoke() {
    let app = spawn_app(Options::without_builders()).await;
    let operator = [("KILN_TOKEN", TOKEN)];
    let create = ["token", "create", "--user", "cli_tok", "--name", "laptop"];
    let (code, out, err) = kiln_async(&app.api, &operator, &create).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("cannot show it again"), "{err}");
    let field = |out: &str, name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    let token = field(&out, "token ");
    let id = field(&out, "id ");
    assert!(token.starts_with("kiln_ut_"), "{out}");
    assert_eq!(field(&out, "name "), "laptop");
    // The back end's secret may make one too; --json prints the answer.
    let (code, out, err) = kiln_async(
        &app.api,
        &[("KILN_HMAC_SECRET", HMAC_SECRET)],
        &["token", "create", "--user", "cli_tok", "--json"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let second: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(second["userId"], "cli_tok");

    // Listed by the operator (for the user) and by the user's own token (no --user needed);
    // never the token itself.
    let (code, listing, err) = kiln_async(&app.api, &operator, &["token", "list", "--user", "cli_tok"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(listing.starts_with("ID"), "{listing}");
    assert!(
        listing.contains(&id) && listing.contains(second["id"].as_str().unwrap()),
        "{listing}"
    );
    assert!(listing.contains("laptop"), "{listing}");
    let leaked = |text: &str| text.contains(&token) || text.contains(second["token"].as_str().unwrap());
    assert!(!leaked(&listing), "{listing}");
    let user_token: &'static str = Box::leak(token.clone().into_boxed_str());
    let as_user = [("KILN_TOKEN", user_token)];
    let (code, own, err) = kiln_async(&app.api, &as_user, &["token", "list", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let own: Value = serde_json::from_str(&own).unwrap();
    assert_eq!(own["tokens"].as_array().unwrap().len(), 2, "{own}");
    assert!(!leaked(&own.to_string()));

    // What a user token may not do, with the reason.
    let (code, _, err) = kiln_async(&app.api, &as_user, &["token", "create", "--user", "cli_tok"]).await;
    assert_eq!(code, ERROR);
    assert!(
        err.contains("404") && err.contains("only an operator token"),
        "{err}"
    );
    let (code, _, err) = kiln_async(&app.api, &as_user, &["token", "list", "--user", "someone_else"]).await;
    assert_eq!(code, ERROR);
    assert!(err.contains("404: user someone_else not found"), "{err}");
    let (code, _, err) = kiln_async(&app.api, &operator, &["token", "list"]).await;
    assert_eq!(code, ERROR);
    assert!(err.contains("400: userId is required"), "{err}");
    let (code, _, err) = kiln_async(&app.api, &operator, &["token", "create"]).await;
    assert_eq!(code, USAGE);
    assert!(err.contains("--user"), "{err}");
    let (code, _, err) = kiln_async(&app.api, &operator, &["token", "revoke", "not/an/id"]).await;
    assert_eq!(code, ERROR);
    assert!(err.contains("400: a token id is 26 characters"), "{err}");

    // Revoked, it stops working at once.
    let (code, out, err) = kiln_async(&app.api, &operator, &["token", "revoke", &id]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("revoked  {id} (user cli_tok, at ")),
        "{out}"
    );
    let (code, _, err) = kiln_async(&app.api, &as_user, &["token", "list"]).await;
    assert_eq!(code, ERROR);
    assert!(err.contains("401: the bearer token is not valid"), "{err}");
    let (code, listing, _) = kiln_async(
        &app.api,
        &operator,
        &["token", "list", "--user", "cli_tok", "--json"],
    )
    .await;
    assert_eq!(code, 0);
    let listing: Value = serde_json::from_str(&listing).unwrap();
    let revoked = listing["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id.as_str())
        .unwrap();
    assert!(revoked["revokedAt"].is_string(), "{listing}");
}

#[tokio::test]
async fn a_signed_request_is_signed_as_it_is_sent_whatever_the_arguments_hold() {
    let app = spawn_app(Options::without_builders()).await;
    let signed = [("KILN_HMAC_SECRET", HMAC_SECRET)];
    // A space (and a `&`) in a query value: encoded once, and the signature covers the
    // encoded URL, so the API answers on the value itself instead of with a 401.
    let (code, out, err) = kiln_async(&app.api, &signed, &["list", "--user", "a b&c=d"]).await;
    assert_eq!(code, ERROR, "{out}");
    assert!(!err.contains("401"), "{err}");
    assert!(err.contains("userId"), "{err}");
    // A valid one is listed (no builds yet).
    let (code, out, err) = kiln_async(&app.api, &signed, &["--json", "list", "--user", "u_signed"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let page: Value = serde_json::from_str(&out).unwrap();
    assert!(page["builds"].as_array().is_some_and(Vec::is_empty), "{page}");
}

#[tokio::test]
async fn projects_are_listed_and_deleted_and_a_deletion_off_a_terminal_needs_yes() {
    let app = spawn_app(Options::without_builders()).await;
    let site = serde_json::json!([{ "path": "index.html", "content": "<h1>x</h1>" }]);
    let (older, newer) = (unique("cli-old"), unique("cli-new"));
    for project in [&older, &newer] {
        app.submit(&helpers::build_body("cli_p", project, site.clone()))
            .await;
    }
    app.submit(&helpers::build_body("cli_other", &unique("theirs"), site.clone()))
        .await;
    let creds = [("KILN_TOKEN", TOKEN)];

    let (code, out, err) = kiln_async(&app.api, &creds, &["projects", "--user", "cli_p"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("PROJECT") && lines[0].contains("LAST BUILD"),
        "{out}"
    );
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[1].starts_with(&format!("cli_p/{newer}")) && lines[1].contains("queued"),
        "{out}"
    );
    assert!(lines[2].starts_with(&format!("cli_p/{older}")), "{out}");
    let (code, out, err) = kiln_async(&app.api, &creds, &["projects", "--limit", "1", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["projects"].as_array().unwrap().len(), 1, "{out}");
    assert!(page["nextCursor"].is_string(), "{out}");

    // Off a terminal, a deletion is refused without --yes, and nothing is deleted.
    let target = format!("cli_p/{older}");
    let (code, _, err) = kiln_async(&app.api, &creds, &["project", "delete", &target]).await;
    assert_eq!(code, ERROR);
    assert!(err.contains("refusing to delete without --yes"), "{err}");
    let (code, out, err) = kiln_async(&app.api, &creds, &["project", "delete", &target, "--yes"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("deleted {target}: 1 versions")), "{out}");
    let (code, _, err) = kiln_async(&app.api, &creds, &["project", "delete", &target, "--yes"]).await;
    assert_eq!(code, ERROR);
    assert!(err.contains("404"), "{err}");

    let (code, out, err) = kiln_async(
        &app.api,
        &creds,
        &["user", "delete", "cli_p", "--yes", "--wait", "--json"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let done: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (done["status"].as_str(), done["projectsDeleted"].as_i64()),
        (Some("done"), Some(1)),
        "{out}"
    );
    let (code, out, _) = kiln_async(&app.api, &creds, &["projects"]).await;
    assert_eq!(code, 0);
    assert!(!out.contains("cli_p/") && out.contains("cli_other/"), "{out}");
}
