//! `kiln` as a person uses it day to day, against a real farm: logging in (profiles in the
//! configuration file, the environment winning over it), linking a folder, submitting what
//! the ignore files leave (never `.env.local`), paging lists, the fleet, a build's log and
//! preview, and the exit code of a build that did not deploy.

#[allow(dead_code)]
#[path = "../../api/tests/api/helpers.rs"]
mod helpers;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use helpers::{spawn_app, unique, Options, HMAC_SECRET, TOKEN};
use serde_json::Value;

/// What a run of `kiln` ended with.
struct Run {
    code: i32,
    out: String,
    err: String,
}

/// `kiln` with only these variables (and `XDG_CONFIG_HOME` = `config`), in `cwd`, with
/// `stdin`; run off the async runtime (the API it talks to runs on it).
async fn kiln(config: &Path, cwd: &Path, env: &[(&str, &str)], args: &[&str], stdin: &str) -> Run {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.env_clear()
        .env("XDG_CONFIG_HOME", config)
        .current_dir(cwd)
        .args(args)
        .write_stdin(stdin.to_owned());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn login_whoami_and_logout_with_profiles_the_environment_winning() {
    let app = spawn_app(Options::without_builders()).await;
    let config = tempfile::tempdir().unwrap();
    let (c, cwd) = (config.path(), config.path());
    let url = [("KILN_URL", app.api.as_str())];
    let file = c.join("kiln/config.toml");

    // A token the API refuses is not saved.
    let r = kiln(c, cwd, &url, &["login", "--with-token"], "wrong\n").await;
    assert_eq!(r.code, 1, "{}", r.err);
    assert!(r.err.contains("401"), "{}", r.err);
    assert!(!file.exists());

    // The operator's, as the default profile (the URL as an argument).
    let r = kiln(
        c,
        cwd,
        &[],
        &["login", &app.api, "--with-token"],
        &format!("{TOKEN}\n"),
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("as an operator (profile default)"), "{}", r.out);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the file holds tokens");
    assert!(std::fs::read_to_string(&file).unwrap().contains(TOKEN));

    // The profile's credentials work without any variable: a user token made with them is
    // saved as a second profile, which becomes the current one.
    let r = kiln(
        c,
        cwd,
        &[],
        &["token", "create", "--user", "cli_me", "--json"],
        "",
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.err);
    let made: Value = serde_json::from_str(&r.out).unwrap();
    let user_token = made["token"].as_str().unwrap();
    let r = kiln(
        c,
        cwd,
        &url,
        &["login", "--profile", "me", "--with-token"],
        user_token,
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("as user cli_me (profile me)"), "{}", r.out);
    let r = kiln(c, cwd, &[], &["whoami"], "").await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out.contains("as       user cli_me") && r.out.contains("from     profile me"),
        "{}",
        r.out
    );
    let r = kiln(c, cwd, &[], &["whoami", "--profile", "default", "--json"], "").await;
    let who: Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(
        (who["profile"].as_str(), who["as"]["kind"].as_str()),
        (Some("default"), Some("privileged"))
    );
    let r = kiln(c, cwd, &[], &["whoami", "--profile", "nope"], "").await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("no profile \"nope\""), "{}", r.err);

    // The environment wins over the file: a token, the back end's secret...
    let r = kiln(c, cwd, &[("KILN_TOKEN", "wrong")], &["whoami"], "").await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("401"), "{}", r.err);
    let r = kiln(c, cwd, &[("KILN_HMAC_SECRET", HMAC_SECRET)], &["whoami"], "").await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("the product back end"), "{}", r.out);
    let secret_file = c.join("secret");
    std::fs::write(&secret_file, format!("{HMAC_SECRET}\n")).unwrap();
    let from_file = [("KILN_HMAC_SECRET_FILE", secret_file.to_str().unwrap())];
    let r = kiln(c, cwd, &from_file, &["whoami"], "").await;
    assert!(r.out.contains("the product back end"), "{}{}", r.out, r.err);
    // ...and a URL: the profile's token is not sent to another API.
    let elsewhere = [("KILN_URL", "http://127.0.0.1:9")];
    let r = kiln(c, cwd, &elsewhere, &["whoami"], "").await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("no credentials"), "{}", r.err);
    // The secret is never an argument.
    let r = kiln(c, cwd, &[], &["--hmac-secret", HMAC_SECRET, "whoami"], "").await;
    assert_eq!(r.code, 2, "a usage error: {}", r.err);

    // Logged out of the current profile, the default one is used again; then of that one too.
    let r = kiln(c, cwd, &[], &["logout"], "").await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(!std::fs::read_to_string(&file).unwrap().contains(user_token));
    let r = kiln(c, cwd, &[], &["whoami"], "").await;
    assert!(r.out.contains("as       an operator"), "{}{}", r.out, r.err);
    let r = kiln(c, cwd, &[], &["logout", "--profile", "default"], "").await;
    assert_eq!(r.code, 0, "{}", r.err);
    let r = kiln(c, cwd, &[], &["whoami"], "").await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("no credentials"), "{}", r.err);
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn a_linked_folder_is_submitted_without_its_local_env_files_or_what_ignore_files_name() {
    let app = spawn_app(Options {
        builders: 0,
        generator: Some("true".into()),
        ..Options::default()
    })
    .await;
    let config = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let (c, dir) = (config.path(), folder.path());
    write(dir, "index.html", "<h1>linked</h1>\n");
    write(dir, ".env", "VITE_TITLE=linked\n");
    write(dir, ".env.local", "API_SECRET=do-not-upload\n");
    write(dir, ".env.production.local", "API_SECRET=do-not-upload\n");
    write(dir, ".gitignore", "*.log\n");
    write(dir, "debug.log", "noise\n");
    write(dir, ".kilnignore", "drafts/\n");
    write(dir, "drafts/plan.md", "not yet\n");
    let env = [("KILN_URL", app.api.as_str()), ("KILN_TOKEN", TOKEN)];
    let project = unique("linked");

    // Not linked yet: which project?
    let r = kiln(c, dir, &env, &["submit"], "").await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("kiln link"), "{}", r.err);
    let r = kiln(c, dir, &env, &["link", &format!("cli_link/{project}")], "").await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(dir.join(".kiln/project.toml").is_file());

    let r = kiln(c, dir, &env, &["submit", "--json"], "").await;
    assert_eq!(r.code, 0, "{}", r.err);
    let queued: Value = serde_json::from_str(&r.out).unwrap();
    let id = queued["buildId"].as_str().unwrap();
    let listing = app
        .get_json(&format!("/v1/projects/cli_link/{project}/versions/{id}/files"))
        .await;
    let sent: Vec<&str> = listing["source"]
        .as_array()
        .unwrap_or_else(|| panic!("{listing}"))
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        !sent.contains(&".env.local"),
        "a local secret was uploaded: {sent:?}"
    );
    assert_eq!(sent, [".env", ".kilnignore", "index.html"]);

    // No folder but a prompt: a build the generator writes, for the linked project.
    let r = kiln(c, dir, &env, &["cancel", id], "").await;
    assert_eq!(r.code, 0, "{}", r.err);
    let r = kiln(
        c,
        dir,
        &env,
        &["submit", "--prompt", "a linked page", "--json"],
        "",
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.err);
    let queued: Value = serde_json::from_str(&r.out).unwrap();
    let build = app
        .get_json(&format!("/v1/builds/{}", queued["buildId"].as_str().unwrap()))
        .await;
    assert_eq!(build["projectId"], project.as_str(), "{build}");
}

#[tokio::test]
async fn lists_page_the_fleet_shows_and_a_build_that_did_not_deploy_exits_3() {
    let app = spawn_app(Options::without_builders()).await;
    let config = tempfile::tempdir().unwrap();
    let (c, cwd) = (
        config.path(),
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
    );
    let env = [("KILN_URL", app.api.as_str()), ("KILN_TOKEN", TOKEN)];
    let user = unique("pager").replace('-', "_");
    let mut ids = Vec::new();
    for n in 0..3 {
        let project = format!("p{n}");
        let args = [
            "submit",
            "examples/static-site",
            "--user",
            &user,
            "--project",
            &project,
            "--json",
        ];
        let r = kiln(c, cwd, &env, &args, "").await;
        assert_eq!(r.code, 0, "{}", r.err);
        let queued: Value = serde_json::from_str(&r.out).unwrap();
        ids.push(queued["buildId"].as_str().unwrap().to_owned());
    }
    // A page of two, and where the next starts.
    let r = kiln(c, cwd, &env, &["list", "--user", &user, "--limit", "2"], "").await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.out.lines().count(), 3, "a header and two builds: {}", r.out);
    assert!(r.out.contains("queued") && r.out.contains("s ago"), "{}", r.out);
    assert!(r.err.contains(&format!("--before {}", ids[1])), "{}", r.err);
    let json_list = |extra: &[&str]| {
        let mut args = vec!["list", "--json", "--user", user.as_str(), "--limit", "2"];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let ids_of = |r: &Run| -> Vec<String> {
        let page: Value = serde_json::from_str(&r.out).unwrap_or_else(|_| panic!("{}{}", r.out, r.err));
        page["builds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    let args = json_list(&["--all"]);
    let r = kiln(
        c,
        cwd,
        &env,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "",
    )
    .await;
    assert_eq!(ids_of(&r), newest_first);
    let args = json_list(&["--before", &ids[1]]);
    let r = kiln(
        c,
        cwd,
        &env,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "",
    )
    .await;
    assert_eq!(ids_of(&r), [ids[0].clone()]);
    let args = json_list(&["--status", "queued", "--all"]);
    let r = kiln(
        c,
        cwd,
        &env,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "",
    )
    .await;
    assert_eq!(ids_of(&r).len(), 3);

    // A cancelled build, watched: exit code 3.
    let r = kiln(c, cwd, &env, &["cancel", &ids[0]], "").await;
    assert_eq!(r.code, 0, "{}", r.err);
    let r = kiln(c, cwd, &env, &["watch", &ids[0]], "").await;
    assert_eq!(r.code, 3, "{}{}", r.out, r.err);
    assert!(r.out.contains("status   cancelled"), "{}", r.out);
    let r = kiln(c, cwd, &env, &["open", &ids[0]], "").await;
    assert_eq!(r.code, 1);
    assert!(r.err.contains("has no preview"), "{}", r.err);

    // The fleet, once a builder has reported; it builds the other two.
    let _builder = app.start_builder("cli-fleet", |_| {});
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = kiln(c, cwd, &env, &["builders", "--json"], "").await;
        assert_eq!(r.code, 0, "{}", r.err);
        let fleet: Value = serde_json::from_str(&r.out).unwrap();
        if fleet["builders"].as_array().is_some_and(|b| !b.is_empty()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no builder reported: {fleet}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let r = kiln(c, cwd, &env, &["builders"], "").await;
    assert!(
        r.out.starts_with("BUILDER") && r.out.contains("running on"),
        "{}",
        r.out
    );

    let r = kiln(c, cwd, &env, &["watch", &ids[2]], "").await;
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let r = kiln(c, cwd, &env, &["open", &ids[2]], "").await;
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out.trim().starts_with("http://"),
        "only the URL, no browser: {}",
        r.out
    );
    let r = kiln(c, cwd, &env, &["logs", &ids[2]], "").await;
    assert_eq!(r.code, 0, "{}", r.err);
    let r = kiln(c, cwd, &env, &["logs", &ids[2], "--follow"], "").await;
    assert_eq!(r.code, 0, "the log of an ended build ends: {}", r.err);
}

#[tokio::test]
async fn env_values_are_set_listed_and_removed_a_secret_only_from_stdin_and_redeploy_waits() {
    let app = spawn_app(Options {
        env: vec![(
            "KILN_SECRETS_KEY",
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".into(),
        )],
        ..Options::default()
    })
    .await;
    let config = tempfile::tempdir().unwrap();
    let (c, cwd) = (
        config.path(),
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
    );
    let env = [("KILN_URL", app.api.as_str()), ("KILN_TOKEN", TOKEN)];
    let user = unique("envcli").replace('-', "_");
    let target = format!("{user}/site");

    let run = kiln(c, cwd, &env, &["env", "set", &target, "GREETING=hello there"], "").await;
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    assert!(run.out.contains("set GREETING on"), "{}", run.out);
    // A secret is never taken from the command line.
    let run = kiln(
        c,
        cwd,
        &env,
        &["env", "set", &target, "TOKEN=abc123456", "--secret"],
        "",
    )
    .await;
    assert_eq!(run.code, 1, "{}{}", run.out, run.err);
    assert!(run.err.contains("not taken from the command line"), "{}", run.err);
    let run = kiln(
        c,
        cwd,
        &env,
        &["env", "set", &target, "TOKEN", "--secret"],
        "piped-secret-value\n",
    )
    .await;
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    assert!(run.out.contains("set TOKEN (secret)"), "{}", run.out);

    let run = kiln(c, cwd, &env, &["env", "ls", &target], "").await;
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    assert!(
        run.out.contains("GREETING") && run.out.contains("hello there"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("TOKEN") && run.out.contains("(secret)"),
        "{}",
        run.out
    );
    assert!(!run.out.contains("piped-secret-value"), "{}", run.out);
    let run = kiln(c, cwd, &env, &["--json", "env", "ls", &target], "").await;
    let listed: Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(listed["vars"][0]["name"], "GREETING");
    assert!(listed["vars"][1].get("value").is_none(), "{listed}");

    let run = kiln(c, cwd, &env, &["env", "set", &target, "lower=x"], "").await;
    assert_eq!(run.code, 1, "{}{}", run.out, run.err);
    assert!(run.err.contains("must match [A-Z_]"), "{}", run.err);

    // Nothing to redeploy yet; then a first build, and its redeploy followed to the end.
    let run = kiln(c, cwd, &env, &["redeploy", &target], "").await;
    assert_eq!(run.code, 1, "{}{}", run.out, run.err);
    assert!(run.err.contains("no deployed version to redeploy"), "{}", run.err);
    let submit = [
        "submit",
        "examples/static-site",
        "--user",
        &user,
        "--project",
        "site",
        "--wait",
    ];
    let run = kiln(c, cwd, &env, &submit, "").await;
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    let run = kiln(c, cwd, &env, &["redeploy", &target, "--wait"], "").await;
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    assert!(
        run.out.contains("redeploying ") && run.out.contains(&format!("of {target} as ")),
        "{}",
        run.out
    );
    assert!(run.out.contains("deployed"), "{}", run.out);

    let run = kiln(c, cwd, &env, &["env", "rm", &target, "GREETING"], "").await;
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    let run = kiln(c, cwd, &env, &["env", "rm", &target, "GREETING"], "").await;
    assert_eq!(run.code, 1, "{}{}", run.out, run.err);
    assert!(
        run.err.contains("has no environment value GREETING"),
        "{}",
        run.err
    );
}
