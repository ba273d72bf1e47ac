//! Build logs: captured with secrets redacted, streamed live to a follower on another API
//! instance, resumed from a line, the same as the stored log, and capped.

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options, SseMessage, HMAC_SECRET};

/// A project whose build prints `lines` numbered lines, `every_ms` apart, one of them naming
/// Kiln's HMAC secret (as if the code had found it somewhere).
fn chatty_project(lines: usize, every_ms: u64, width: usize) -> Value {
    let script = format!(
        "const fs = require('fs');
let i = 0;
const t = setInterval(() => {{
  i++;
  console.log('line ' + i + ' ' + 'x'.repeat({width}));
  if (i === 3) console.error('the secret is {HMAC_SECRET}');
  if (i === {lines}) {{
    clearInterval(t);
    fs.mkdirSync('dist', {{ recursive: true }});
    fs.writeFileSync('dist/index.html', '<h1>logs</h1>');
  }}
}}, {every_ms});"
    );
    json!([
        { "path": "package.json", "content": json!({ "name": "p", "private": true, "scripts": { "build": "node build.js" } }).to_string() },
        { "path": "build.js", "content": script },
    ])
}

fn lines_of(messages: &[SseMessage]) -> Vec<(u64, String)> {
    messages
        .iter()
        .filter(|m| m.event == "line")
        .map(|m| (m.id.as_deref().unwrap().parse().unwrap(), m.data.clone()))
        .collect()
}

#[tokio::test]
async fn a_log_streams_live_resumes_on_another_instance_and_matches_the_stored_log() {
    let app = spawn_app(Options::default()).await;
    let other = app.another_api().await;
    let id = app
        .submit(&build_body("u_logs", &unique("live"), chatty_project(30, 100, 4)))
        .await;

    // Followed from the start, on the instance that runs no builder.
    let followed = app
        .sse_messages(&format!("{other}/v1/builds/{id}/logs?follow=true"), None)
        .await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");

    let end = followed.last().expect("the follower got messages");
    assert_eq!(end.event, "end", "{followed:?}");
    let lines = lines_of(&followed);
    let numbers: Vec<u64> = lines.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        numbers,
        (1..=lines.len() as u64).collect::<Vec<_>>(),
        "every line once, in order"
    );
    assert_eq!(end.data, json!({ "lastLine": lines.len() }).to_string());
    let texts: Vec<&str> = lines.iter().map(|(_, t)| t.as_str()).collect();
    // Kiln says how the build gets its dependencies, then runs the install.
    assert!(
        texts[0].starts_with("[kiln] dependencies: installing"),
        "{texts:?}"
    );
    assert!(texts[1].starts_with("$ pnpm install"), "{texts:?}");
    for i in 1..=30 {
        assert!(
            texts.contains(&format!("line {i} xxxx").as_str()),
            "line {i} in {texts:?}"
        );
    }
    // Secrets never appear in logs.
    assert!(texts.contains(&"the secret is [redacted]"), "{texts:?}");
    assert!(followed.iter().all(|m| !m.data.contains(HMAC_SECRET)));
    // Live: the build's first lines came seconds before its last.
    let at = |text: &str| followed.iter().find(|m| m.data.starts_with(text)).unwrap().at;
    assert!(
        at("line 30 ") - at("line 2 ") > std::time::Duration::from_secs(2),
        "lines arrived as they were printed"
    );

    // Resumed after line 5, on the first instance: exactly the rest.
    let rest = app
        .sse_messages(&format!("{}/v1/builds/{id}/logs?follow=true", app.api), Some(5))
        .await;
    assert_eq!(lines_of(&rest), lines[5..].to_vec());
    assert_eq!(rest.last().unwrap().event, "end");

    // The whole log, stored with the version, is the same text.
    let res = app.get(&format!("/v1/builds/{id}/logs")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(res.headers()["x-kiln-log-complete"], "true");
    assert_eq!(
        res.headers()["x-kiln-log-last-line"],
        lines.len().to_string().as_str()
    );
    let whole = res.text().await.unwrap();
    assert_eq!(whole.lines().collect::<Vec<_>>(), texts);
    let tail = app
        .get(&format!("/v1/builds/{id}/logs?after={}", lines.len() - 2))
        .await;
    assert_eq!(
        tail.text().await.unwrap().lines().collect::<Vec<_>>(),
        texts[texts.len() - 2..]
    );
}

#[tokio::test]
async fn a_capped_log_says_so_and_the_stored_copy_serves_followers_once_the_live_one_is_gone() {
    let app = spawn_app(Options {
        env: vec![("KILN_MAX_LOG_KB", "1".into())],
        ..Options::default()
    })
    .await;
    let id = app
        .submit(&build_body("u_logs", &unique("cap"), chatty_project(200, 2, 40)))
        .await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");

    let whole = app
        .get(&format!("/v1/builds/{id}/logs"))
        .await
        .text()
        .await
        .unwrap();
    assert!(whole.len() <= 1024 + 100, "{} bytes", whole.len());
    assert_eq!(
        whole.lines().last(),
        Some("[kiln] log truncated: it passed the cap of 1 KB (KILN_MAX_LOG_KB)")
    );
    assert!(!whole.contains("line 200 "));

    // Followed after the end from the live stream, then from the stored log alone.
    let url = format!("{}/v1/builds/{id}/logs?follow=true", app.api);
    let from_live = lines_of(&app.sse_messages(&url, None).await);
    let (mut conn, _) = app.redis().await;
    let deleted: i64 = redis::cmd("DEL")
        .arg(format!("{}:logs:{id}", app.settings.redis.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "the live stream was there");
    let stored = app.sse_messages(&url, None).await;
    assert_eq!(stored.last().unwrap().event, "end");
    let from_store = lines_of(&stored);
    assert_eq!(from_live, from_store);
    let texts: Vec<&str> = from_store.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, whole.lines().collect::<Vec<_>>());
}

#[tokio::test]
async fn log_queries_are_checked() {
    let app = spawn_app(Options::without_builders()).await;
    let id = app
        .submit(&build_body("u_logs", &unique("q"), chatty_project(1, 1, 1)))
        .await;
    // Queued: nothing yet, and not complete.
    let res = app.get(&format!("/v1/builds/{id}/logs")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-kiln-log-complete"], "false");
    assert_eq!(res.text().await.unwrap(), "");
    for (path, status) in [
        (format!("/v1/builds/{id}/logs?after=-1"), 400),
        (format!("/v1/builds/{id}/logs?follow=maybe"), 400),
        (format!("/v1/builds/{id}/logs?colour=red"), 400),
        ("/v1/builds/not-an-id/logs".to_owned(), 400),
        (
            format!(
                "/v1/builds/{}/logs",
                ulid::Ulid::new().to_string().to_ascii_lowercase()
            ),
            404,
        ),
        (
            format!(
                "/v1/builds/{}/logs?follow=true",
                ulid::Ulid::new().to_string().to_ascii_lowercase()
            ),
            404,
        ),
    ] {
        let res = app.get(&path).await;
        assert_eq!(res.status(), status, "{path}");
        let body: Value = res.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}
