//! A project's environment and secrets, for real: a Vite app's bundle gets a plain value, a
//! redeploy picks up a changed one while the old version keeps its bundle, a secret the build
//! prints every way it can leaves only `[redacted]` (stored and streamed log), and is found in
//! no answer, event, webhook body, manifest, diff, zip or Postgres row in clear. Keys rotate
//! without losing a secret, and a builder without the key does not build a project with one.

use std::io::Read;

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, tree, unique, Options, TestApp};

const SECRET: &str = "sk_live_51QxKiLnT3stS3cr3tValue9f8e7d";

fn key(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// Every form of the secret a leak would show (whole, its halves, base64 both ways).
fn leaks(text: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let half = SECRET.len() / 2;
    [SECRET, &SECRET[..half], &SECRET[half..], &b64[..b64.len() - 4]]
        .into_iter()
        .filter(|form| text.contains(form))
        .map(str::to_owned)
        .collect()
}

async fn put_env(app: &TestApp, user: &str, project: &str, name: &str, body: Value) -> (u16, Value) {
    app.send_json("PUT", &format!("/v1/projects/{user}/{project}/env/{name}"), &body)
        .await
}

/// The text of the script a deployed Vite page loads.
async fn bundle(app: &TestApp, label: &str) -> String {
    let page = app.preview(label, "/").await.text().await.unwrap();
    let script = page
        .split("src=\"")
        .filter_map(|s| s.split('"').next())
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .unwrap_or_else(|| panic!("no script in {page}"))
        .to_owned();
    app.preview(label, &script).await.text().await.unwrap()
}

#[tokio::test]
async fn values_reach_the_bundle_a_redeploy_takes_new_ones_and_a_secret_leaks_nowhere() {
    let app = spawn_app(Options {
        shared_store: true,
        env: vec![("KILN_SECRETS_KEY", key(7))],
        ..Options::default()
    })
    .await;
    // Every webhook payload is stored: the secret must be in none of them.
    let (status, _) = app
        .send_json("POST", "/v1/webhooks", &json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
    assert_eq!(status, 201);
    let (user, project) = ("u_env", unique("env"));

    let (status, greeting) = put_env(
        &app,
        user,
        &project,
        "VITE_GREETING",
        json!({"value": "hello-from-env-one"}),
    )
    .await;
    assert_eq!(status, 200, "{greeting}");
    assert_eq!(greeting["value"], "hello-from-env-one");
    let (status, secret) = put_env(
        &app,
        user,
        &project,
        "API_SECRET",
        json!({"value": SECRET, "secret": true}),
    )
    .await;
    assert_eq!(status, 200, "{secret}");
    assert_eq!(secret["secret"], true);
    assert!(secret.get("value").is_none(), "{secret}");
    let listed = app.get_json(&format!("/v1/projects/{user}/{project}/env")).await;
    assert_eq!(
        listed["vars"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["API_SECRET", "VITE_GREETING"]
    );
    assert!(leaks(&listed.to_string()).is_empty(), "{listed}");

    // The first build: a one-off plain value too, and the log followed live.
    let mut body = build_body(user, &project, tree("api/tests/fixtures/vite-env"));
    body["env"] = json!({"ONE_OFF": "just-this-build"});
    let first = app.submit(&body).await;
    let follow_url = format!("{}/v1/builds/{first}/logs?follow=true", app.api);
    let followed = app.sse_messages(&follow_url, None);
    let (followed, build) = tokio::join!(followed, app.wait(&first));
    assert_eq!(build["status"], "deployed", "{build}");
    assert!(bundle(&app, &first).await.contains("hello-from-env-one"));

    let log = app.log_text(&first).await;
    assert!(log.contains("secret present: true"), "{log}");
    assert!(log.contains("plain: [redacted]"), "{log}");
    assert!(log.contains("base64: [redacted]"), "{log}");
    assert!(log.contains("one-off: just-this-build"), "{log}");
    assert!(log.contains("greeting at build: hello-from-env-one"), "{log}");
    // Not the install's: its scripts ran without the values.
    assert!(log.contains("install sees API_SECRET: false"), "{log}");
    assert!(log.contains("install sees VITE_GREETING: false"), "{log}");
    assert_eq!(leaks(&log), Vec::<String>::new(), "{log}");
    let streamed: String = followed.iter().map(|m| m.data.clone() + "\n").collect();
    assert!(streamed.contains("plain: [redacted]"), "{streamed}");
    assert_eq!(leaks(&streamed), Vec::<String>::new(), "{streamed}");

    let view = app.get_json(&format!("/v1/builds/{first}")).await;
    assert_eq!(
        view["env"],
        json!([
            {"name": "API_SECRET", "secret": true},
            {"name": "ONE_OFF", "secret": false},
            {"name": "VITE_GREETING", "secret": false}
        ])
    );
    assert_eq!(
        view["envChanged"],
        json!(["API_SECRET", "ONE_OFF", "VITE_GREETING"])
    );

    // A new value, then a redeploy: the new bundle has it, the old version keeps its own.
    put_env(
        &app,
        user,
        &project,
        "VITE_GREETING",
        json!({"value": "hello-from-env-two"}),
    )
    .await;
    let (status, queued) = app
        .send_json(
            "POST",
            &format!("/v1/projects/{user}/{project}/redeploy"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["redeployOf"], first.as_str());
    let second = queued["buildId"].as_str().unwrap().to_owned();
    let build = app.wait(&second).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(build["redeployOf"], first.as_str());
    let label = app
        .get_json(&format!("/v1/projects/{user}/{project}/latest"))
        .await;
    let latest_host = label["latestUrl"]
        .as_str()
        .unwrap()
        .split("//")
        .nth(1)
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    assert!(bundle(&app, &latest_host).await.contains("hello-from-env-two"));
    assert!(bundle(&app, &second).await.contains("hello-from-env-two"));
    assert!(bundle(&app, &first).await.contains("hello-from-env-one"));
    let view = app.get_json(&format!("/v1/builds/{second}")).await;
    // The one-off value was the first build's alone.
    assert_eq!(view["envChanged"], json!(["ONE_OFF", "VITE_GREETING"]), "{view}");

    // Nowhere else: answers, events, webhook bodies, manifests, diffs, zips, rows.
    let mut answers = String::new();
    for path in [
        format!("/v1/builds/{first}"),
        format!("/v1/builds/{second}"),
        format!("/v1/builds/{first}/events?limit=1000"),
        format!("/v1/builds/{second}/events?limit=1000"),
        format!("/v1/builds?userId={user}"),
        format!("/v1/projects/{user}/{project}/versions"),
        format!("/v1/projects/{user}/{project}/versions/{first}/files"),
        format!("/v1/projects/{user}/{project}/versions/{first}/diff/{second}?mode=patch"),
        format!("/v1/projects/{user}/{project}/env"),
    ] {
        let res = app.get(&path).await;
        assert_eq!(res.status(), 200, "{path}");
        answers.push_str(&res.text().await.unwrap());
    }
    assert_eq!(leaks(&answers), Vec::<String>::new());
    let zip = app
        .get(&format!(
            "/v1/projects/{user}/{project}/versions/{first}/artifact"
        ))
        .await;
    assert_eq!(zip.status(), 200);
    let bytes = zip.bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    for i in 0..archive.len() {
        let mut text = String::new();
        let mut file = archive.by_index(i).unwrap();
        let _ = file.read_to_string(&mut text);
        assert!(leaks(&text).is_empty(), "{:?}", file.name());
    }
    let rows: Vec<String> = sqlx::query_scalar(
        "select row_to_json(v)::text from versions v where user_id = $1
         union all select row_to_json(e)::text from build_events e
             where build_id in (select id from versions where user_id = $1)
         union all select payload::text from webhook_deliveries
             where build_id in (select id from versions where user_id = $1)
         union all select row_to_json(p)::text from project_env p where user_id = $1
         union all select encode(ciphertext, 'escape') from project_env where user_id = $1 and secret",
    )
    .bind(user)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(rows.len() > 10, "{rows:?}");
    for row in &rows {
        assert!(leaks(row).is_empty(), "in clear in Postgres: {row}");
    }
}

#[tokio::test]
async fn names_and_values_are_refused_by_rule_and_another_users_project_is_not_found() {
    let app = spawn_app(Options::without_builders()).await;
    let (user, project) = ("u_envrules", unique("rules"));
    for (name, body, status, says) in [
        ("PATH", json!({"value": "/x"}), 422, "set by Kiln's sandbox"),
        ("KILN_TOKEN", json!({"value": "x"}), 422, "starts with KILN_"),
        (
            "NPM_CONFIG_REGISTRY",
            json!({"value": "x"}),
            422,
            "starts with NPM_CONFIG_",
        ),
        ("lower", json!({"value": "x"}), 422, "must match"),
        (
            "VITE_KEY",
            json!({"value": "x", "secret": true}),
            422,
            "would be served to every visitor",
        ),
        (
            "BIG",
            json!({"value": "x".repeat(32 * 1024 + 1)}),
            422,
            "at most 32768",
        ),
        ("EMPTY_BODY", json!({}), 422, "value is missing"),
        ("ODD", json!({"value": "x", "colour": 1}), 400, "unknown field"),
        // This farm has no key: a secret cannot be stored.
        (
            "TOKEN",
            json!({"value": "abcdef", "secret": true}),
            503,
            "no key for projects' secrets",
        ),
    ] {
        let (got, answer) = put_env(&app, user, &project, name, body).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert!(
            answer["detail"].as_str().unwrap_or_default().contains(says),
            "{name}: {answer}"
        );
    }
    let (status, answer) = app
        .send_json(
            "DELETE",
            &format!("/v1/projects/{user}/{project}/env/NOPE"),
            &json!(null),
        )
        .await;
    assert_eq!(status, 404, "{answer}");

    // A user token sees its own user's projects only.
    let (_, made) = app
        .send_json("POST", "/v1/tokens", &json!({"userId": "someone_else"}))
        .await;
    let token = made["token"].as_str().unwrap();
    let res = app
        .client
        .get(format!("{}/v1/projects/{user}/{project}/env", app.api))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // 200 values at most.
    for i in 0..200 {
        let (status, answer) = put_env(&app, user, &project, &format!("V{i}"), json!({"value": "x"})).await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, answer) = put_env(&app, user, &project, "ONE_MORE", json!({"value": "x"})).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("200 environment values"),
        "{answer}"
    );
    let (status, _) = put_env(&app, user, &project, "V0", json!({"value": "replaced"})).await;
    assert_eq!(status, 200, "replacing one of the 200 is fine");
}

/// A project whose build writes a hash of its secret into the published page.
fn secret_site() -> Value {
    json!([
        {"path": "package.json", "content": r#"{"name":"s","private":true,"scripts":{"build":"node build.js"}}"#},
        {"path": "build.js", "content": "const c=require('crypto');const fs=require('fs');fs.mkdirSync('dist');fs.writeFileSync('dist/index.html','sha256:'+c.createHash('sha256').update(process.env.API_SECRET||'').digest('hex'));"}
    ])
}

#[tokio::test]
async fn keys_rotate_without_losing_a_secret_and_a_builder_without_the_key_does_not_build() {
    use sha2::Digest;
    let (old, new) = (format!("k1:{}", key(1)), format!("k2:{}", key(2)));
    let app = spawn_app(Options {
        builders: 0,
        env: vec![
            ("KILN_SECRETS_KEYS", old.clone()),
            ("KILN_MAX_ATTEMPTS", "1".into()),
        ],
        ..Options::default()
    })
    .await;
    let (user, project) = ("u_rotate", unique("rotate"));
    let (status, _) = put_env(
        &app,
        user,
        &project,
        "API_SECRET",
        json!({"value": SECRET, "secret": true}),
    )
    .await;
    assert_eq!(status, 200);
    let expected = format!("sha256:{}", hex::encode(sha2::Sha256::digest(SECRET)));

    // A builder without any key: an infrastructure failure saying so.
    let keyless = app.start_builder("keyless", |s| s.encryption.keys = None);
    let id = app.submit(&build_body(user, &project, secret_site())).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "failed", "{build}");
    assert!(
        build["error"]
            .as_str()
            .unwrap()
            .contains("no key to decrypt them"),
        "{build}"
    );
    keyless.shutdown.cancel();
    let _ = keyless.task.await;

    // The new key first, the old one still there: the old secret still opens.
    let both = format!("{new},{old}");
    let builder = app.start_builder("rotating", |s| {
        s.encryption.keys = Some(both.clone().into());
    });
    let id = app.submit(&build_body(user, &project, secret_site())).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(app.preview(&id, "/").await.text().await.unwrap(), expected);
    builder.shutdown.cancel();
    let _ = builder.task.await;

    // Re-encrypted under the new key, a builder with only the new key builds it.
    let ring = kiln_shared::secrets::Keyring::parse(&both).unwrap();
    let report = kiln_shared::db::projects::reencrypt::reencrypt(&app.db, &ring, false)
        .await
        .unwrap();
    assert_eq!((report.resealed, report.failed.len()), (1, 0), "{report:?}");
    let again = kiln_shared::db::projects::reencrypt::reencrypt(&app.db, &ring, false)
        .await
        .unwrap();
    assert_eq!(again.resealed, 0, "a second run has nothing to do");
    let key_id: String = sqlx::query_scalar("select key_id from project_env where user_id = $1")
        .bind(user)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(key_id, "k2");
    let only_new = new.clone();
    let builder = app.start_builder("new-key-only", |s| {
        s.encryption.keys = Some(only_new.into());
    });
    let (status, queued) = app
        .send_json(
            "POST",
            &format!("/v1/projects/{user}/{project}/redeploy"),
            // Built again (not reused): the builder decrypts with the new key alone.
            &json!({ "force": true }),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    let id = queued["buildId"].as_str().unwrap();
    let build = app.wait(id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(app.preview(id, "/").await.text().await.unwrap(), expected);
    builder.shutdown.cancel();
}
