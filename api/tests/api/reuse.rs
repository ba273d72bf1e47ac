//! No-op rebuilds, for real: a resubmission identical to a deployed version of its project
//! (sources with a lockfile, settings, environment, toolchain) is not built: it becomes a
//! version of its own serving that version's output (`reusedFrom`, `build_reused`), and the
//! latest pointer moves to it. `"force": true` builds anyway; any difference (a source byte, a
//! setting, a plain or secret value, a one-off value) builds; identical sources in another
//! project never reuse; a tree without a lockfile never does; and the reused version outlives
//! its source.

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, unique, Options, TestApp};

/// A project with no dependencies whose build writes `dist/index.html` from `msg.txt` and the
/// environment's `GREETING` and `TOKEN`'s length (the install writes its lockfile).
fn files(msg: &str) -> Value {
    let build = "const fs = require('fs');\n\
        fs.mkdirSync('dist', { recursive: true });\n\
        const token = process.env.TOKEN || '';\n\
        fs.writeFileSync('dist/index.html', `<p>${fs.readFileSync('msg.txt', 'utf8')} ${process.env.GREETING || ''} ${token.length}</p>`);\n";
    json!([
        { "path": "package.json", "content": json!({ "name": "reuse", "version": "1.0.0", "private": true, "scripts": { "build": "node build.js" } }).to_string() },
        { "path": "build.js", "content": build },
        { "path": "msg.txt", "content": msg },
    ])
}

fn body(user: &str, project: &str, files: Value) -> Value {
    json!({ "userId": user, "projectId": project, "files": files })
}

async fn app() -> TestApp {
    let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    spawn_app(Options {
        env: vec![("KILN_SECRETS_KEY", key)],
        ..Options::default()
    })
    .await
}

/// Submits `body` and waits for its build to be deployed; returns its view, and how long
/// from the submit to the view saying `deployed`.
async fn deployed(app: &TestApp, body: &Value) -> (Value, Duration) {
    let started = Instant::now();
    let id = app.submit(body).await;
    let build = app.wait_for_status(&id, "deployed").await;
    let took = started.elapsed();
    (build, took)
}

fn id_of(build: &Value) -> String {
    build["id"].as_str().unwrap().to_owned()
}

/// The kinds of a finished build's events.
async fn kinds(app: &TestApp, id: &str) -> Vec<String> {
    app.final_events(id)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts `build` was built (not reused): no `reusedFrom`, its install station ran (an install,
/// or the project's warm dependency tree) and so did its build step.
async fn assert_built(app: &TestApp, build: &Value, what: &str) {
    assert_eq!(build["reusedFrom"], Value::Null, "{what}: {build}");
    let kinds = kinds(app, &id_of(build)).await;
    let has = |kind: &str| kinds.iter().any(|k| k == kind);
    assert!(
        has("install_started") || has("install_skipped"),
        "{what}: {kinds:?}"
    );
    assert!(has("build_step_started"), "{what}: {kinds:?}");
    assert!(!kinds.contains(&"build_reused".to_owned()), "{what}: {kinds:?}");
}

/// Asserts `build` reused `from`'s output: `reusedFrom`, `build_reused` then
/// `deploy_completed` and no station's events, the same bytes under its own URL.
async fn assert_reused(app: &TestApp, build: &Value, from: &str, what: &str) {
    let id = id_of(build);
    assert_eq!(build["reusedFrom"], from, "{what}: {build}");
    let kinds = kinds(app, &id).await;
    assert_eq!(
        kinds,
        [
            "build_queued",
            "build_started",
            "build_reused",
            "deploy_completed"
        ],
        "{what}"
    );
    let ours = app.preview(&id, "/").await;
    assert_eq!(ours.status(), 200, "{what}");
    let theirs = app.preview(from, "/").await.text().await.unwrap();
    assert_eq!(ours.text().await.unwrap(), theirs, "{what}");
    let log = app.log_text(&id).await;
    assert!(
        log.contains(&format!("identical to version {from}")),
        "{what}: {log}"
    );
}

async fn latest_id(app: &TestApp, user: &str, project: &str) -> String {
    let latest = app
        .get_json(&format!("/v1/projects/{user}/{project}/latest"))
        .await;
    latest["latestVersionId"].as_str().unwrap().to_owned()
}

async fn put_env(app: &TestApp, user: &str, project: &str, name: &str, value: &str, secret: bool) {
    let (status, answer) = app
        .send_json(
            "PUT",
            &format!("/v1/projects/{user}/{project}/env/{name}"),
            &json!({ "value": value, "secret": secret }),
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {answer}");
}

#[tokio::test]
async fn an_identical_resubmission_is_reused_force_builds_and_any_difference_builds() {
    let app = app().await;
    let (user, project) = ("u_reuse", unique("same"));
    let first = body(user, &project, files("hello"));

    // The first build: no lockfile came, the install wrote one into the version's tree.
    let (a, _) = deployed(&app, &first).await;
    assert_built(&app, &a, "the first build").await;
    let a_id = id_of(&a);

    // The same files again (on top of the first version, whose tree has the lockfile).
    let (b, took) = deployed(&app, &first).await;
    eprintln!(
        "identical resubmission: submit -> deployed {} ms",
        took.as_millis()
    );
    assert_reused(&app, &b, &a_id, "an identical resubmission").await;
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(latest_id(&app, user, &project).await, id_of(&b));
    assert_eq!(b["outputDir"], a["outputDir"], "{b}");
    assert_eq!(b["metrics"]["fileCount"], a["metrics"]["fileCount"], "{b}");
    let latest = app
        .get_json(&format!("/v1/projects/{user}/{project}/latest"))
        .await;
    let label = latest["latestUrl"]
        .as_str()
        .unwrap()
        .split("//")
        .nth(1)
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let page = app.preview(&label, "/").await.text().await.unwrap();
    assert_eq!(page, "<p>hello  0</p>");

    // `force` builds anyway.
    let mut forced = first.clone();
    forced["force"] = json!(true);
    let (c, _) = deployed(&app, &forced).await;
    assert_built(&app, &c, "force").await;
    assert!(app.log_text(&id_of(&c)).await.contains("\"force\": true"));

    // Each difference builds.
    let (d, _) = deployed(&app, &body(user, &project, files("hello!"))).await;
    assert_built(&app, &d, "one source byte").await;
    for (what, settings) in [
        ("buildCommand", json!({ "buildCommand": "node build.js" })),
        ("outputDir", json!({ "outputDir": "dist" })),
    ] {
        let mut with = body(user, &project, files("hello!"));
        with["settings"] = settings;
        let (built, _) = deployed(&app, &with).await;
        assert_built(&app, &built, what).await;
    }
    let again = body(user, &project, files("hello!"));
    put_env(&app, user, &project, "GREETING", "hi", false).await;
    let (e, _) = deployed(&app, &again).await;
    assert_built(&app, &e, "a plain value set").await;
    put_env(&app, user, &project, "GREETING", "hey", false).await;
    let (e, _) = deployed(&app, &again).await;
    assert_built(&app, &e, "a plain value changed").await;
    put_env(&app, user, &project, "TOKEN", "secret-one", true).await;
    let (f, _) = deployed(&app, &again).await;
    assert_built(&app, &f, "a secret set").await;
    put_env(&app, user, &project, "TOKEN", "secret-twelve", true).await;
    let (g, _) = deployed(&app, &again).await;
    assert_built(&app, &g, "a secret value changed (same name)").await;
    assert_eq!(
        app.preview(&id_of(&g), "/").await.text().await.unwrap(),
        "<p>hello! hey 13</p>"
    );
    let mut one_off = again.clone();
    one_off["env"] = json!({ "GREETING": "yo" });
    let (h, _) = deployed(&app, &one_off).await;
    assert_built(&app, &h, "a one-off value").await;
    assert_eq!(
        app.preview(&id_of(&h), "/").await.text().await.unwrap(),
        "<p>hello! yo 13</p>"
    );

    // Without the one-off value it is the version before it again, secrets and all.
    let (i, _) = deployed(&app, &again).await;
    assert_reused(&app, &i, &id_of(&g), "the environment of a version before").await;

    // A redeploy with nothing changed reuses too, unless forced.
    let redeploy = format!("/v1/projects/{user}/{project}/redeploy");
    let (status, queued) = app.send_json("POST", &redeploy, &json!({})).await;
    assert_eq!(status, 202, "{queued}");
    let j = app
        .wait_for_status(queued["buildId"].as_str().unwrap(), "deployed")
        .await;
    assert_reused(&app, &j, &id_of(&g), "a redeploy").await;
    let (status, queued) = app.send_json("POST", &redeploy, &json!({ "force": true })).await;
    assert_eq!(status, 202, "{queued}");
    let k = app
        .wait_for_status(queued["buildId"].as_str().unwrap(), "deployed")
        .await;
    assert_built(&app, &k, "a forced redeploy").await;
}

#[tokio::test]
async fn identical_sources_elsewhere_or_without_a_lockfile_are_built() {
    let app = app().await;
    let project = unique("origin");
    let (a, _) = deployed(&app, &body("u_alice", &project, files("same"))).await;
    assert_built(&app, &a, "the first build").await;
    let sources = app
        .get_json(&format!(
            "/v1/projects/u_alice/{project}/versions/{}/files",
            id_of(&a)
        ))
        .await;
    assert!(
        sources["source"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "pnpm-lock.yaml"),
        "the install kept no lockfile: {sources}"
    );
    let lockfile = app
        .get(&format!(
            "/v1/projects/u_alice/{project}/versions/{}/files/pnpm-lock.yaml",
            id_of(&a)
        ))
        .await;
    let lockfile = match lockfile.status().as_u16() {
        200 => lockfile.text().await.unwrap(),
        status => panic!("reading the lockfile: {status}"),
    };
    let mut with_lockfile = files("same");
    with_lockfile
        .as_array_mut()
        .unwrap()
        .push(json!({ "path": "pnpm-lock.yaml", "content": lockfile }));

    // The same tree, lockfile and all, in another project of the user, and in another user's
    // project of the same name: built.
    let (b, _) = deployed(&app, &body("u_alice", &unique("twin"), with_lockfile.clone())).await;
    assert_built(&app, &b, "another project of the user").await;
    let (c, _) = deployed(&app, &body("u_bob", &project, with_lockfile.clone())).await;
    assert_built(&app, &c, "another user's project of the same name").await;
    // ... while in the project itself, it is reused.
    let (d, _) = deployed(&app, &body("u_alice", &project, with_lockfile)).await;
    assert_reused(&app, &d, &id_of(&a), "the project itself").await;

    // Without its lockfile the install resolves today's versions: never reused.
    for round in 0..2 {
        let mut no_lockfile = body("u_alice", &project, files("same"));
        no_lockfile["deleted"] = json!(["pnpm-lock.yaml"]);
        let (e, _) = deployed(&app, &no_lockfile).await;
        assert_built(&app, &e, &format!("no lockfile, round {round}")).await;
    }
}

#[tokio::test]
async fn a_reused_version_outlives_its_source() {
    let app = app().await;
    let (user, project) = ("u_outlive", unique("outlive"));
    let first = body(user, &project, files("kept"));
    let (a, _) = deployed(&app, &first).await;
    let (b, _) = deployed(&app, &first).await;
    let (a_id, b_id) = (id_of(&a), id_of(&b));
    assert_reused(&app, &b, &a_id, "the resubmission").await;
    let before = app.preview(&b_id, "/").await.text().await.unwrap();

    // Retention deletes the source version (not the latest: the reused one is), and its
    // manifests go with it.
    let rules = kiln_shared::db::retention::Rules {
        keep: 0,
        archive_after: Duration::from_secs(0),
        delete_after: Duration::from_secs(0),
        rollback_protect: Duration::from_secs(0),
    };
    let id = kiln_shared::domain::VersionId::parse(&a_id).unwrap();
    let deleted = kiln_shared::db::retention::delete(&app.db, &[id], &rules)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "the source version is deletable");
    let manifests = app.artifacts_dir.as_ref().unwrap().join("manifests").join(&a_id);
    std::fs::remove_dir_all(&manifests).unwrap();

    // The reused version still serves its bytes; its row no longer names the source.
    let page = app.preview(&b_id, "/").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.text().await.unwrap(), before);
    let view = app.get_json(&format!("/v1/builds/{b_id}")).await;
    assert_eq!(view["status"], "deployed", "{view}");
    assert_eq!(view["reusedFrom"], Value::Null, "{view}");
}
