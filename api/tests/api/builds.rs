//! The build path end to end: admission → stream → builder → store → versions → preview.

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, tree, unique, Options, Store};

fn file(path: &str, content: &str) -> Value {
    json!({ "path": path, "content": content })
}

async fn static_site_round_trip(store: Store) {
    let app = spawn_app(Options {
        store,
        ..Options::without_builders()
    })
    .await;
    let project = unique("site");
    let id = app
        .submit(&build_body("u_1", &project, tree("examples/static-site")))
        .await;
    let build = app.build_one(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(build["framework"], "static");
    assert_eq!(build["metrics"]["fileCount"], 3);
    assert!(build["metrics"]["totalMs"].as_i64().unwrap() >= build["metrics"]["uploadMs"].as_i64().unwrap());
    assert!(build["finishedAt"].is_string() && build["startedAt"].is_string());

    let page = app.preview(&id, "/").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.text().await.unwrap().contains("Hello from Kiln"));
    let css = app.preview(&id, "/assets/style.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    let latest = app.get_json(&format!("/v1/projects/u_1/{project}/latest")).await;
    assert_eq!(latest["latestVersionId"], id.as_str());
    assert_eq!(latest["source"], "kv");
    assert_eq!(latest["previewUrl"], build["previewUrl"]);
}

#[tokio::test]
async fn a_static_site_is_built_and_served_from_the_filesystem_store() {
    static_site_round_trip(Store::Fs).await;
}

#[tokio::test]
async fn a_static_site_is_built_and_served_from_the_s3_store() {
    static_site_round_trip(Store::S3).await;
}

#[tokio::test]
async fn a_vite_react_tailwind_project_is_built_served_and_rebuilt_with_a_frozen_lockfile() {
    // Without warm dependency trees, which would skip the rebuild's install (warm_trees.rs).
    let app = spawn_app(Options {
        shared_store: true,
        env: vec![("KILN_DEP_CACHE_MB", "off".into())],
        ..Options::default()
    })
    .await;
    let project = unique("salon");
    let id = app
        .submit(&build_body("u_vite", &project, tree("examples/vite-react")))
        .await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(build["framework"], "vite");
    assert!(build["nodeVersion"].is_string() && build["pnpmVersion"].is_string());
    assert!(build["metrics"]["installMs"].as_i64().unwrap() > 0);

    let html = app.preview(&id, "/").await.text().await.unwrap();
    let script = html
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .unwrap_or_else(|| panic!("no script in {html}"))
        .to_owned();
    let js = app.preview(&id, &script).await;
    assert_eq!(js.status(), 200);
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(
        js.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(js.text().await.unwrap().contains("Salon booking"));
    let stylesheet = html
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".css"))
        .expect("tailwind emits a stylesheet")
        .to_owned();
    let css = app.preview(&id, &stylesheet).await.text().await.unwrap();
    assert!(
        css.contains("rose"),
        "tailwind generated the classes the app uses"
    );

    // The lockfile the install wrote is kept with the version's sources...
    let files = app.get_json(&format!("/v1/builds/{id}")).await;
    assert_eq!(files["status"], "deployed");
    // ...so a rebuild with the same package.json installs frozen.
    let rebuild = json!({ "userId": "u_vite", "projectId": project,
        "files": [file("src/App.tsx", "export default function App() { return <h1 className=\"text-sky-700\">Rebuilt</h1> }\n")] });
    let id2 = app.submit(&rebuild).await;
    let build2 = app.wait(&id2).await;
    assert_eq!(build2["status"], "deployed", "{build2}");
    assert_eq!(build2["parentVersionId"], id.as_str());
    let log = std::fs::read_to_string(
        app.artifacts_dir
            .as_ref()
            .unwrap()
            .join(format!("logs/{id2}.log")),
    )
    .unwrap();
    assert!(log.contains("--frozen-lockfile"), "{log}");
    let html2 = app.preview(&id2, "/").await.text().await.unwrap();
    assert_ne!(html, html2, "the new bundle has a new hash");
}

#[tokio::test]
async fn a_rebuild_that_changes_one_file_stores_one_new_blob_and_moves_latest() {
    let app = spawn_app(Options::default()).await;
    let project = unique("site");
    let first = app
        .submit(&build_body("u_2", &project, tree("examples/static-site")))
        .await;
    assert_eq!(app.wait(&first).await["status"], "deployed");
    let blobs = app.blob_count();

    let change = json!({ "userId": "u_2", "projectId": project, "files": [file("assets/app.js", "console.log('v2');\n")] });
    let second = app.submit(&change).await;
    let build = app.wait(&second).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(build["parentVersionId"], first.as_str());
    // the source and the output of a static site are the same bytes: one blob
    assert_eq!(app.blob_count(), blobs + 1);

    let history = app
        .get_json(&format!("/v1/projects/u_2/{project}/versions"))
        .await;
    let ids: Vec<&str> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second.as_str(), first.as_str()]);
    let latest = app.get_json(&format!("/v1/projects/u_2/{project}/latest")).await;
    assert_eq!(latest["latestVersionId"], second.as_str());

    // Both versions stay servable; the project's label serves the latest.
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
    assert_eq!(
        app.preview(&label, "/assets/app.js").await.text().await.unwrap(),
        "console.log('v2');\n"
    );
    assert!(app
        .preview(&first, "/assets/app.js")
        .await
        .text()
        .await
        .unwrap()
        .contains("dataset.ready"));

    // A rebuild on the older version with a deletion.
    let from_first = json!({ "userId": "u_2", "projectId": project, "baseVersionId": first.to_uppercase(),
        "deleted": ["assets/style.css"] });
    let third = app.submit(&from_first).await;
    let build = app.wait(&third).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(build["parentVersionId"], first.as_str());
    assert_eq!(build["metrics"]["fileCount"], 2);
    assert_eq!(app.preview(&third, "/assets/style.css").await.status(), 404);
}

#[tokio::test]
async fn a_rebuild_finds_its_base_even_when_the_kv_lost_the_latest_pointer() {
    let app = spawn_app(Options::default()).await;
    let project = unique("kvless");
    let first = app
        .submit(&build_body("u_kv", &project, tree("examples/static-site")))
        .await;
    assert_eq!(app.wait(&first).await["status"], "deployed");
    let files = app.wait(&first).await["metrics"]["fileCount"].clone();

    // The KV loses the pointer (say, a Redis without persistence restarted): admission, which
    // takes a project without one for a new project, must still find the base in Postgres.
    let (mut redis, keys) = app.redis().await;
    let gone: i64 = redis::AsyncCommands::del(&mut redis, keys.latest("u_kv", &project))
        .await
        .unwrap();
    assert_eq!(gone, 1);
    let change = json!({ "userId": "u_kv", "projectId": project,
        "files": [file("assets/app.js", "console.log('v2');\n")] });
    let second = app.submit(&change).await;
    let build = app.wait(&second).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(build["parentVersionId"], first.as_str());
    assert_eq!(
        build["metrics"]["fileCount"], files,
        "the base's other files are kept"
    );
    assert_eq!(app.preview(&second, "/assets/style.css").await.status(), 200);
    assert_eq!(
        app.preview(&second, "/assets/app.js").await.text().await.unwrap(),
        "console.log('v2');\n"
    );
}

#[tokio::test]
async fn twenty_concurrent_requests_for_one_project_admit_exactly_one() {
    let app = spawn_app(Options::without_builders()).await;
    let body = build_body("u_3", &unique("race"), tree("examples/static-site"));
    // Twenty requests, not one sent twenty times: a signature that changes something is accepted
    // once, so each carries a prompt of its own (signed in the same second, the same bytes
    // would be the same signature).
    let bodies: Vec<Value> = (0..20)
        .map(|i| {
            let mut b = body.clone();
            b["prompt"] = format!("request {i}").into();
            b
        })
        .collect();
    let responses = futures::future::join_all(bodies.iter().map(|b| app.post_build(b))).await;
    let mut accepted = Vec::new();
    let mut conflicts = Vec::new();
    for res in responses {
        let status = res.status().as_u16();
        let json: Value = res.json().await.unwrap();
        match status {
            202 => accepted.push(json["buildId"].as_str().unwrap().to_owned()),
            409 => conflicts.push(json),
            other => panic!("unexpected {other}: {json}"),
        }
    }
    assert_eq!(accepted.len(), 1, "exactly one 202");
    assert_eq!(conflicts.len(), 19);
    for c in &conflicts {
        assert_eq!(c["buildId"], accepted[0].as_str());
        assert!(c["error"].as_str().unwrap().contains("queued or running"));
    }
    assert_eq!(app.version_count().await, 1, "losers leave no row");
    assert_eq!(app.queue_depth().await, 1);
}

#[tokio::test]
async fn idempotency_keys_replay_the_first_answer_even_after_completion() {
    let app = spawn_app(Options::default()).await;
    let body = build_body("u_4", &unique("idem"), tree("examples/static-site"));
    let send = |b: Value, key: &'static str| {
        let app = &app;
        async move {
            let ts = chrono::Utc::now().timestamp();
            let raw = b.to_string();
            let sig = kiln_shared::signing::sign_request(
                crate::helpers::HMAC_SECRET.as_bytes(),
                ts,
                "POST",
                "/v1/builds",
                raw.as_bytes(),
            );
            app.client
                .post(format!("{}/v1/builds", app.api))
                .header("X-Kiln-Timestamp", ts.to_string())
                .header("X-Kiln-Signature", sig)
                .header("Idempotency-Key", key)
                .body(raw)
                .send()
                .await
                .unwrap()
        }
    };
    let first = send(body.clone(), "key-1").await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let again = send(body.clone(), "key-1").await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);

    let id = first["buildId"].as_str().unwrap();
    assert_eq!(app.wait(id).await["status"], "deployed");
    let after = send(body.clone(), "key-1").await;
    assert_eq!(after.status(), 202);
    assert_eq!(after.json::<Value>().await.unwrap(), first);

    // Concurrent retries with one key: one admission; the others replay it or are told it is
    // still in progress, never a second build.
    let racing = build_body("u_4", &unique("idem-race"), tree("examples/static-site"));
    let answers = futures::future::join_all((0..10).map(|_| send(racing.clone(), "key-race"))).await;
    let mut ids = std::collections::HashSet::new();
    for res in answers {
        let status = res.status().as_u16();
        let json: Value = res.json().await.unwrap();
        match status {
            202 => {
                ids.insert(json["buildId"].as_str().unwrap().to_owned());
            }
            409 => assert!(
                json["error"].as_str().unwrap().contains("still being processed"),
                "{json}"
            ),
            other => panic!("unexpected {other}: {json}"),
        }
    }
    assert_eq!(ids.len(), 1, "one build for one key");
    assert_eq!(app.version_count().await, 2);

    let mut other = body.clone();
    other["prompt"] = "something else".into();
    let conflict = send(other, "key-1").await;
    assert_eq!(conflict.status(), 422);
    let err: Value = conflict.json().await.unwrap();
    assert!(err["error"].as_str().unwrap().contains("different request body"));
    assert_eq!(app.version_count().await, 2);

    // A refused request does not burn its key: the corrected retry is admitted.
    let bad = json!({ "userId": "u 4", "projectId": "p" });
    assert_eq!(send(bad, "key-2").await.status(), 422);
    let fixed = build_body("u_4", &unique("idem-fixed"), tree("examples/static-site"));
    assert_eq!(send(fixed, "key-2").await.status(), 202);
}

fn package(scripts_build: &str) -> Value {
    json!([
        file(
            "package.json",
            &json!({ "name": "p", "private": true, "scripts": { "build": scripts_build } }).to_string()
        ),
        file("index.html", "<h1>x</h1>"),
    ])
}

#[tokio::test]
async fn a_failing_build_keeps_its_step_and_the_tail_of_its_log() {
    let app = spawn_app(Options::default()).await;
    let script = "node -e \"console.log('compiling'); console.error('src/App.tsx(3,1): error TS1005: boom'); process.exit(3)\"";
    let id = app
        .submit(&build_body("u_5", &unique("fail"), package(script)))
        .await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "failed");
    assert_eq!(build["failedStep"], "build");
    // The error is a short summary: what the tool said, where; the whole log keeps the lines.
    let error = build["error"].as_str().unwrap();
    assert!(error.contains("exited with status 3"), "{error}");
    assert!(error.contains("src/App.tsx:3:1 boom [TS1005]"), "{error}");
    assert_eq!(build["diagnosticsTotal"], 1, "{build}");
    let d = &build["diagnostics"][0];
    assert_eq!(
        (&d["tool"], &d["file"], &d["line"], &d["column"], &d["code"]),
        (
            &json!("tsc"),
            &json!("src/App.tsx"),
            &json!(3),
            &json!(1),
            &json!("TS1005")
        ),
        "{d}"
    );
    let log = app.log_text(&id).await;
    assert!(
        log.contains("compiling") && log.contains("src/App.tsx(3,1): error TS1005: boom"),
        "{log}"
    );
    assert!(build["previewUrl"].is_null());
    assert_eq!(app.preview(&id, "/").await.status(), 404);

    // The project's slot is free again: the next build is admitted.
    let ok = app
        .submit(&build_body(
            "u_5",
            build["projectId"].as_str().unwrap(),
            tree("examples/static-site"),
        ))
        .await;
    assert_eq!(app.wait(&ok).await["status"], "deployed");
}

#[tokio::test]
async fn a_build_without_an_output_folder_fails_at_output() {
    let app = spawn_app(Options::without_builders()).await;
    let id = app
        .submit(&build_body(
            "u_6",
            &unique("noout"),
            package("node -e \"console.log('built nothing')\""),
        ))
        .await;
    let build = app.build_one(&id).await;
    assert_eq!(build["failedStep"], "output", "{build}");
    assert!(build["error"]
        .as_str()
        .unwrap()
        .starts_with("no output folder found after the build"));
}

#[tokio::test]
async fn a_build_past_its_time_limit_is_killed() {
    let app = spawn_app(Options {
        timeout_secs: 3,
        ..Options::default()
    })
    .await;
    let marker = std::env::temp_dir().join(unique("kiln-orphan"));
    // The build starts a background child that would write a file after 6 s; killing the
    // whole process group means it never does.
    let script = format!("sh -c '(sleep 6; touch {}) & sleep 60'", marker.display());
    let started = std::time::Instant::now();
    let id = app
        .submit(&build_body("u_7", &unique("slow"), package(&script)))
        .await;
    let build = app.wait(&id).await;
    assert_eq!(build["failedStep"], "build", "{build}");
    assert!(
        build["error"]
            .as_str()
            .unwrap()
            .contains("longer than its limit of 3 s"),
        "{build}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert!(!marker.exists(), "a process of the build outlived it");
}

#[tokio::test]
async fn a_prompt_only_build_runs_the_generator() {
    let script = r#"cat > /dev/null; printf '%s' '{"name":"Salon","slug":"salon","tech_stack":["html"],"metadata":{"tags":["beauty"]},"templateFiles":[{"path":"index.html","content":"<h1>template</h1>"}],"files":[{"path":"index.html","content":"<h1>generated</h1>"}]}'"#;
    let app = spawn_app(Options {
        generator: Some(script.into()),
        ..Options::default()
    })
    .await;
    let body = json!({ "userId": "u_8", "projectId": unique("gen"), "prompt": "a salon site" });
    let id = app.submit(&body).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(build["metadata"]["slug"], "salon");
    assert_eq!(build["metadata"]["techStack"][0], "html");
    assert!(build["metrics"]["generateMs"].is_i64());
    assert_eq!(
        app.preview(&id, "/").await.text().await.unwrap(),
        "<h1>generated</h1>"
    );

    let failing = spawn_app(Options {
        generator: Some("echo not json".into()),
        ..Options::default()
    })
    .await;
    let id = failing.submit(&body).await;
    let build = failing.wait(&id).await;
    assert_eq!(build["failedStep"], "generate");
    assert!(
        build["error"]
            .as_str()
            .unwrap()
            .contains("not the JSON output contract"),
        "{build}"
    );
}

#[tokio::test]
async fn seed_routes_map_onto_the_build_path() {
    let app = spawn_app(Options::default()).await;
    let project = unique("seed");
    let body = build_body("u_9", &project, tree("examples/static-site"));
    let res = app
        .signed(
            "POST",
            "/build-preview-for-new-project",
            body.to_string().as_bytes(),
        )
        .await;
    assert_eq!(res.status(), 202);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["success"], true);
    assert_eq!(json["versionId"], json["buildId"]);
    assert_eq!(
        app.wait(json["buildId"].as_str().unwrap()).await["status"],
        "deployed"
    );

    let rebuild =
        json!({ "userId": "u_9", "projectId": project, "files": [file("index.html", "<p>v2</p>")] });
    let res = app
        .signed("POST", "/rebuild-preview", rebuild.to_string().as_bytes())
        .await;
    assert_eq!(res.status(), 202);

    let unknown = json!({ "userId": "u_9", "projectId": unique("none"), "files": [file("index.html", "x")] });
    let res = app
        .signed("POST", "/rebuild-preview", unknown.to_string().as_bytes())
        .await;
    assert_eq!(res.status(), 422);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("has no deployed version to rebuild"));
}

#[tokio::test]
async fn builds_are_listed_newest_first_with_filters_and_a_cursor() {
    let app = spawn_app(Options::without_builders()).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            app.submit(&build_body(
                "u_list",
                &format!("p{i}"),
                tree("examples/static-site"),
            ))
            .await,
        );
    }
    app.submit(&build_body("u_other", "p0", tree("examples/static-site")))
        .await;
    let page = app.get_json("/v1/builds?userId=u_list&limit=2").await;
    let got: Vec<&str> = page["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()]);
    let cursor = page["nextCursor"].as_str().unwrap();
    let next = app
        .get_json(&format!("/v1/builds?userId=u_list&limit=2&before={cursor}"))
        .await;
    assert_eq!(next["builds"][0]["id"], ids[0].as_str());
    assert!(next["nextCursor"].is_null());
    let queued = app.get_json("/v1/builds?status=queued&projectId=p0").await;
    assert_eq!(queued["builds"].as_array().unwrap().len(), 2);
    assert_eq!(app.get("/v1/builds?limit=101").await.status(), 400);
    assert_eq!(app.get("/v1/builds?status=cooking").await.status(), 400);
}

#[tokio::test]
async fn a_base_version_must_belong_to_the_project_and_be_deployed() {
    let app = spawn_app(Options::default()).await;
    let a = app
        .submit(&build_body("u_10", "alpha", tree("examples/static-site")))
        .await;
    assert_eq!(app.wait(&a).await["status"], "deployed");
    let wrong = json!({ "userId": "u_10", "projectId": "beta", "baseVersionId": a, "files": [file("index.html", "x")] });
    let res = app.post_build(&wrong).await;
    assert_eq!(res.status(), 422);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("is not a version of project u_10/beta"));

    let failed = app.submit(&build_body("u_10", "gamma", package("exit 1"))).await;
    assert_eq!(app.wait(&failed).await["status"], "failed");
    let on_failed = json!({ "userId": "u_10", "projectId": "gamma", "baseVersionId": failed, "files": [] });
    let res = app.post_build(&on_failed).await;
    assert_eq!(res.status(), 422);
    assert!(res.text().await.unwrap().contains("is failed, not deployed"));
}

#[tokio::test]
async fn two_builder_daemons_share_one_stream_and_build_each_version_once() {
    let app = spawn_app(Options::default()).await;
    let mut second = app.settings.clone();
    second.builder.id = Some("second-daemon".into());
    tokio::spawn(kiln_builder::run(second, app.shutdown.clone()));
    let bodies: Vec<Value> = (0..6)
        .map(|i| build_body("u_fleet", &format!("p{i}"), tree("examples/static-site")))
        .collect();
    let ids = futures::future::join_all(bodies.iter().map(|b| app.submit(b))).await;
    for id in &ids {
        let build = app.wait(id).await;
        assert_eq!(build["status"], "deployed", "{build}");
        assert_eq!(build["attempts"], 1, "built once");
    }
    assert_eq!(app.version_count().await, 6);
    assert_eq!(app.queue_depth().await, 0, "every entry was acked");
}
