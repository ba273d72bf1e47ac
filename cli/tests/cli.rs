//! The `kiln` binary against a real farm (API + builder in-process, real services).

#[allow(dead_code)]
#[path = "../../api/tests/api/helpers.rs"]
mod helpers;

use helpers::{spawn_app, unique, Options, HMAC_SECRET, TOKEN};
use serde_json::Value;

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

#[tokio::test]
async fn submit_wait_status_and_list() {
    let app = spawn_app(Options::default()).await;
    let api = app.api.clone();
    let project = unique("cli");
    let p = project.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        kiln(
            &api,
            &[("KILN_TOKEN", TOKEN)],
            &[
                "submit",
                "examples/static-site",
                "--user",
                "cli_user",
                "--project",
                &p,
                "--wait",
                "--json",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let build: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(build["status"], "deployed");
    let id = build["id"].as_str().unwrap().to_owned();
    assert_eq!(app.preview(&id, "/").await.status(), 200);

    let api = app.api.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || {
        kiln(&api, &[("KILN_HMAC_SECRET", HMAC_SECRET)], &["status", &id])
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert!(out.contains("status   deployed"), "{out}");
    assert!(out.contains("preview  http://"), "{out}");

    let api = app.api.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || {
        kiln(&api, &[("KILN_TOKEN", TOKEN)], &["list", "--user", "cli_user"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0);
    assert!(out.lines().next().unwrap().starts_with("BUILD"));
    assert!(out.contains(&format!("cli_user/{project}")), "{out}");
}

#[tokio::test]
async fn failures_exit_non_zero_with_the_reason() {
    let app = spawn_app(Options::without_builders()).await;
    let api = app.api.clone();
    let (code, _, err) = tokio::task::spawn_blocking(move || kiln(&api, &[], &["list"]))
        .await
        .unwrap();
    assert_eq!(code, 2);
    assert!(err.contains("no credentials"), "{err}");

    let api = app.api.clone();
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        kiln(
            &api,
            &[("KILN_TOKEN", "wrong")],
            &["status", "01jabcdefghjkmnpqrstvwxyz0"],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 2);
    assert!(err.contains("401: the bearer token is not valid"), "{err}");

    let api = app.api.clone();
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        kiln(
            &api,
            &[("KILN_TOKEN", TOKEN)],
            &[
                "submit",
                "examples/static-site",
                "--user",
                "bad user",
                "--project",
                "p",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 2);
    assert!(err.contains("422: userId must be"), "{err}");
}
