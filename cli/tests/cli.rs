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
    assert_eq!(*code, 2);
    assert!(err.contains("expected <user>/<project>"), "{err}");
}
