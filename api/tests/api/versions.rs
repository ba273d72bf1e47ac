//! Versions you can trust: rollback and redo as pointer moves, diffs, files, zip exports, pins.

use std::io::Read;

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options, TestApp};

fn file(path: &str, content: &str) -> Value {
    json!({ "path": path, "content": content })
}

fn site(index: &str) -> Value {
    json!([
        file("index.html", index),
        file("app.js", "console.log('app');\n"),
        file(".gitignore", "node_modules\n"),
    ])
}

async fn deploy(app: &TestApp, body: &Value) -> String {
    let id = app.submit(body).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    id
}

/// A project with two deployed versions: index.html `<h1>one</h1>`, then `<h1>two</h1>`.
async fn two_versions(app: &TestApp, user: &str, project: &str) -> (String, String) {
    let v1 = deploy(app, &build_body(user, project, site("<h1>one</h1>"))).await;
    let change =
        json!({ "userId": user, "projectId": project, "files": [file("index.html", "<h1>two</h1>")] });
    let v2 = deploy(app, &change).await;
    (v1, v2)
}

async fn rollback(app: &TestApp, user: &str, project: &str, to: &str) -> reqwest::Response {
    let body = json!({ "versionId": to }).to_string();
    app.signed(
        "POST",
        &format!("/v1/projects/{user}/{project}/rollback"),
        body.as_bytes(),
    )
    .await
}

fn label_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('.')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn rollback_redo_and_a_rebuild_on_the_rolled_back_sources() {
    let app = spawn_app(Options::default()).await;
    let (user, project) = ("u_rb", unique("rb"));
    let (v1, v2) = two_versions(&app, user, &project).await;
    let blobs = app.blob_count();
    let latest = app
        .get_json(&format!("/v1/projects/{user}/{project}/latest"))
        .await;
    let label = label_of(latest["latestUrl"].as_str().unwrap());
    assert_eq!(
        app.preview(&label, "/").await.text().await.unwrap(),
        "<h1>two</h1>"
    );

    // Roll back to v1: the latest URL serves it on the very next request.
    let res = rollback(&app, user, &project, &v1).await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    let r1 = answer["version"]["id"].as_str().unwrap().to_owned();
    assert_eq!(answer["version"]["kind"], "rollback");
    assert_eq!(answer["version"]["parentVersionId"], v1.as_str());
    assert_eq!(answer["rolledBackTo"], v1.as_str());
    assert_eq!(
        app.preview(&label, "/").await.text().await.unwrap(),
        "<h1>one</h1>"
    );
    assert_eq!(app.preview(&r1, "/").await.text().await.unwrap(), "<h1>one</h1>");
    let latest = app
        .get_json(&format!("/v1/projects/{user}/{project}/latest"))
        .await;
    assert_eq!(latest["latestVersionId"], r1.as_str());
    assert_eq!(app.blob_count(), blobs, "a rollback uploads nothing");

    // Redo is a rollback to the later version.
    let res = rollback(&app, user, &project, &v2.to_uppercase()).await;
    assert_eq!(res.status(), 200);
    let r2 = res.json::<Value>().await.unwrap()["version"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.preview(&label, "/").await.text().await.unwrap(),
        "<h1>two</h1>"
    );

    // Back to v1, then a rebuild: it builds on v1's sources, not on the abandoned head.
    let r3 = rollback(&app, user, &project, &v1)
        .await
        .json::<Value>()
        .await
        .unwrap()["version"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let v3 = deploy(
        &app,
        &json!({ "userId": user, "projectId": project, "files": [file("about.html", "about")] }),
    )
    .await;
    let build = app.get_json(&format!("/v1/builds/{v3}")).await;
    assert_eq!(build["parentVersionId"], r3.as_str());
    assert_eq!(
        app.preview(&label, "/").await.text().await.unwrap(),
        "<h1>one</h1>"
    );
    assert_eq!(
        app.preview(&label, "/about.html").await.text().await.unwrap(),
        "about"
    );

    // The history shows every step, newest first.
    let history = app
        .get_json(&format!("/v1/projects/{user}/{project}/versions"))
        .await;
    let steps: Vec<(String, String)> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_owned(),
                v["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        (&v3, "build"),
        (&r3, "rollback"),
        (&r2, "rollback"),
        (&r1, "rollback"),
        (&v2, "build"),
        (&v1, "build"),
    ];
    assert_eq!(
        steps,
        expected
            .iter()
            .map(|(id, k)| (id.to_string(), k.to_string()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn rollback_refuses_what_it_cannot_do() {
    let app = spawn_app(Options::default()).await;
    let (user, project) = ("u_no", unique("no"));
    let v1 = deploy(&app, &build_body(user, &project, site("<h1>one</h1>"))).await;
    let other = deploy(&app, &build_body(user, &unique("other"), site("x"))).await;
    let failing = json!([file("package.json", r#"{"scripts":{"build":"exit 1"}}"#)]);
    let failed_project = unique("failed");
    let failed = app.submit(&build_body(user, &failed_project, failing)).await;
    assert_eq!(app.wait(&failed).await["status"], "failed");

    let check = |res: reqwest::Response, status: u16, message: &'static str| async move {
        assert_eq!(res.status().as_u16(), status);
        let json: Value = res.json().await.unwrap();
        assert!(json["error"].as_str().unwrap().contains(message), "{json}");
        json
    };
    check(
        rollback(&app, user, &failed_project, &failed).await,
        409,
        "is failed; only a deployed version",
    )
    .await;
    check(
        rollback(&app, user, &project, &other).await,
        404,
        "is not a version of project",
    )
    .await;
    check(
        rollback(&app, user, &project, &ulid::Ulid::new().to_string()).await,
        404,
        "is not a version",
    )
    .await;
    check(
        rollback(&app, user, &project, "v1").await,
        422,
        "versionId is not a valid id",
    )
    .await;
    let res = app
        .signed("POST", &format!("/v1/projects/{user}/{project}/rollback"), b"{")
        .await;
    assert_eq!(res.status(), 400);

    // While a build of the project is in flight, a rollback would be overwritten moments later.
    let slow = json!([
        file("package.json", r#"{"scripts":{"build":"node build.js"}}"#),
        file("build.js", "setTimeout(() => { require('fs').mkdirSync('dist'); require('fs').writeFileSync('dist/index.html', 'slow') }, 1500)"),
    ]);
    let in_flight = app
        .submit(&json!({ "userId": user, "projectId": project, "files": slow }))
        .await;
    let json = check(
        rollback(&app, user, &project, &v1).await,
        409,
        "a build of this project is queued or running",
    )
    .await;
    assert_eq!(json["buildId"], in_flight.as_str());
    assert_eq!(app.wait(&in_flight).await["status"], "deployed");
    assert_eq!(rollback(&app, user, &project, &v1).await.status(), 200);
}

#[tokio::test]
async fn concurrent_rollbacks_leave_a_consistent_pointer_and_history() {
    let app = spawn_app(Options::default()).await;
    let (user, project) = ("u_race", unique("race"));
    let (v1, v2) = two_versions(&app, user, &project).await;
    let targets: Vec<&String> = (0..12).map(|i| if i % 2 == 0 { &v1 } else { &v2 }).collect();
    let answers = futures::future::join_all(targets.iter().map(|t| rollback(&app, user, &project, t))).await;
    let mut winners = Vec::new();
    for res in answers {
        match res.status().as_u16() {
            200 => winners.push(res.json::<Value>().await.unwrap()["version"].clone()),
            409 => assert!(res
                .text()
                .await
                .unwrap()
                .contains("rollback of this project is in progress")),
            other => panic!("unexpected {other}"),
        }
    }
    assert!(!winners.is_empty());
    let history = app
        .get_json(&format!("/v1/projects/{user}/{project}/versions"))
        .await;
    let rows: Vec<&Value> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["kind"] == "rollback")
        .collect();
    assert_eq!(rows.len(), winners.len(), "one row per winner, none for a loser");
    // The pointer names the rollback that finished last, and the latest URL serves its target.
    let last = rows
        .iter()
        .max_by_key(|v| v["finishedAt"].as_str().unwrap().to_owned())
        .unwrap();
    let latest = app
        .get_json(&format!("/v1/projects/{user}/{project}/latest"))
        .await;
    assert_eq!(latest["latestVersionId"], last["id"]);
    let expected = if last["parentVersionId"] == v1.as_str() {
        "<h1>one</h1>"
    } else {
        "<h1>two</h1>"
    };
    assert_eq!(
        app.preview(&label_of(latest["latestUrl"].as_str().unwrap()), "/")
            .await
            .text()
            .await
            .unwrap(),
        expected
    );
}

#[tokio::test]
async fn diffs_compare_sources_across_versions_and_rollbacks() {
    let app = spawn_app(Options::default()).await;
    let (user, project) = ("u_diff", unique("diff"));
    let mut files = site("<h1>one</h1>\n<p>same</p>\n").as_array().unwrap().clone();
    files.push(json!({ "path": "logo.png", "content": "iVBORw0KGgoAAAAA", "encoding": "base64" }));
    files.push(file("old.txt", "bye\n"));
    let v1 = deploy(&app, &build_body(user, &project, Value::Array(files))).await;
    let v2 = deploy(
        &app,
        &json!({ "userId": user, "projectId": project,
        "files": [file("index.html", "<h1>two</h1>\n<p>same</p>\n"),
                  { "path": "logo.png", "content": "iVBORw0KGgoAAAAB", "encoding": "base64" }],
        "deleted": ["old.txt"] }),
    )
    .await;
    let base = format!("/v1/projects/{user}/{project}/versions");

    let stat = app.get_json(&format!("{base}/{v1}/diff/{v2}?mode=stat")).await;
    assert_eq!(
        stat["summary"],
        json!({ "added": 0, "removed": 1, "modified": 2, "additions": 1, "deletions": 2 })
    );
    let files = stat["files"].as_array().unwrap();
    let by_path = |p: &str| files.iter().find(|f| f["path"] == p).unwrap().clone();
    assert_eq!(by_path("index.html")["additions"], 1);
    assert_eq!(by_path("index.html")["deletions"], 1);
    assert_eq!(by_path("logo.png")["binary"], true);
    assert_eq!(by_path("old.txt")["change"], "removed");
    assert!(
        files.iter().all(|f| f["path"] != "app.js"),
        "unchanged files are not listed"
    );

    let res = app.get(&format!("{base}/{v1}/diff/{v2}?mode=patch")).await;
    assert_eq!(res.headers()["content-type"], "text/x-diff; charset=utf-8");
    let patch = res.text().await.unwrap();
    assert!(patch.contains("--- a/index.html\n+++ b/index.html\n"), "{patch}");
    assert!(patch.contains("-<h1>one</h1>\n+<h1>two</h1>\n"), "{patch}");
    assert!(
        patch.contains("Binary files a/logo.png and b/logo.png differ"),
        "{patch}"
    );
    assert!(patch.contains("--- a/old.txt\n+++ /dev/null\n"), "{patch}");

    // Reverse direction, and identical trees (a rollback shares its target's sources).
    let back = app.get_json(&format!("{base}/{v2}/diff/{v1}")).await;
    assert_eq!(back["summary"]["added"], 1);
    let r = rollback(&app, user, &project, &v1)
        .await
        .json::<Value>()
        .await
        .unwrap()["version"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let same = app.get_json(&format!("{base}/{v1}/diff/{r}")).await;
    assert_eq!(same["files"], json!([]));
    let none = app
        .get(&format!("{base}/{r}/diff/{r}?mode=patch"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(none, "");

    // Versions of other projects and bad modes are refused.
    let other = deploy(&app, &build_body(user, &unique("o"), site("x"))).await;
    assert_eq!(app.get(&format!("{base}/{v1}/diff/{other}")).await.status(), 404);
    assert_eq!(
        app.get(&format!("{base}/{v1}/diff/{v2}?mode=word"))
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn files_zips_pins_and_metadata() {
    let app = spawn_app(Options::default()).await;
    let (user, project) = ("u_zip", unique("zip"));
    let output = json!({ "name": "Salon", "slug": "salon", "tech_stack": ["html"],
        "metadata": { "tags": ["beauty"] }, "templateFiles": [], "files": site("<h1>zip</h1>") });
    let id = deploy(
        &app,
        &json!({ "userId": user, "projectId": project, "output": output }),
    )
    .await;
    let base = format!("/v1/projects/{user}/{project}/versions/{id}");

    let listing = app.get_json(&format!("{base}/files")).await;
    let paths = |k: &str| -> Vec<String> {
        listing[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(paths("source"), vec![".gitignore", "app.js", "index.html"]);
    // Publishing never takes `.git*` entries into the output.
    assert_eq!(paths("output"), vec!["app.js", "index.html"]);
    let one = app.get(&format!("{base}/files/index.html")).await;
    assert_eq!(one.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(one.text().await.unwrap(), "<h1>zip</h1>");
    assert_eq!(app.get(&format!("{base}/files/missing.txt")).await.status(), 404);

    for (query, expected) in [("", "output"), ("?source=true", "source")] {
        let res = app.get(&format!("{base}/artifact{query}")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/zip");
        assert!(res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&id));
        let bytes = res.bytes().await.unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
        let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
        names.sort();
        let mut want = paths(expected);
        want.retain(|p| !p.starts_with(".git"));
        assert_eq!(names, want, "{expected}: .git* never included");
        let mut index = String::new();
        zip.by_name("index.html")
            .unwrap()
            .read_to_string(&mut index)
            .unwrap();
        assert_eq!(index, "<h1>zip</h1>");
    }

    let build = app.get_json(&format!("/v1/builds/{id}")).await;
    assert_eq!(build["metadata"]["name"], "Salon");
    assert_eq!(build["metadata"]["metadata"]["tags"][0], "beauty");
    assert_eq!(build["pinned"], false);
    let pinned: Value = app
        .signed("POST", &format!("{base}/pin"), b"")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(pinned["pinned"], true);
    let history = app
        .get_json(&format!("/v1/projects/{user}/{project}/versions"))
        .await;
    assert_eq!(history["versions"][0]["pinned"], true);
    let unpinned: Value = app
        .signed("DELETE", &format!("{base}/pin"), b"")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unpinned["pinned"], false);
    let elsewhere = format!("/v1/projects/{user}/other/versions/{id}/pin");
    assert_eq!(app.signed("POST", &elsewhere, b"").await.status(), 404);
}

#[tokio::test]
async fn a_large_output_is_exported_as_a_stream() {
    let app = spawn_app(Options::default()).await;
    // 12 files of 2 MB of incompressible bytes, built by the project itself.
    let build = r#"const fs=require('fs');const c=require('crypto');fs.mkdirSync('dist');
for(let i=0;i<12;i++)fs.writeFileSync('dist/f'+i+'.bin',c.randomBytes(2*1024*1024));
fs.writeFileSync('dist/index.html','big')"#;
    let files = json!([
        file("package.json", r#"{"scripts":{"build":"node build.js"}}"#),
        file("build.js", build)
    ]);
    let (user, project) = ("u_big", unique("big"));
    let id = deploy(&app, &build_body(user, &project, files)).await;
    let res = app
        .get(&format!("/v1/projects/{user}/{project}/versions/{id}/artifact"))
        .await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("content-length").is_none(),
        "streamed, not buffered"
    );
    let bytes = res.bytes().await.unwrap();
    assert!(bytes.len() > 24 * 1024 * 1024);
    let zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    assert_eq!(zip.len(), 13);
}
