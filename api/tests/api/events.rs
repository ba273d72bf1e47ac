//! Build events: order and completeness, polling, SSE replay and resume through a second API
//! instance.

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options};

fn project(build_script: &str) -> Value {
    json!([
        { "path": "package.json", "content": json!({ "name": "p", "private": true, "scripts": { "build": build_script } }).to_string() },
        { "path": "build.js", "content": "require('fs').mkdirSync('dist', { recursive: true }); require('fs').writeFileSync('dist/index.html', '<h1>events</h1>');" },
    ])
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_successful_build_emits_every_step_in_order_and_streams_through_another_instance() {
    let app = spawn_app(Options::default()).await;
    let other = app.another_api().await;
    let id = app
        .submit(&build_body("u_ev", &unique("ok"), project("node build.js")))
        .await;
    // Streamed live from the other instance (the builder publishes; that instance relays).
    let streamed = app.sse(&other, &id, None).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");

    let polled = app.get_json(&format!("/v1/builds/{id}/events")).await;
    let events = polled["events"].as_array().unwrap();
    assert_eq!(
        types(events),
        [
            "build_queued",
            "build_started",
            "install_started",
            "install_completed",
            "build_step_started",
            "build_step_completed",
            "upload_started",
            "upload_completed",
            "deploy_completed"
        ]
    );
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (1..=9).collect::<Vec<_>>());
    assert_eq!(polled["lastEventId"], 9);
    let progress: Vec<i64> = events.iter().map(|e| e["progress"].as_i64().unwrap()).collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert_eq!(progress.last(), Some(&100));
    assert!(events
        .iter()
        .all(|e| e["buildId"] == id.as_str() && e["timestamp"].is_string()));
    assert_eq!(events[8]["data"]["previewUrl"], build["previewUrl"]);

    // Every event exactly once, in order, and the stream ended after the last.
    let streamed_ids: Vec<i64> = streamed.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(streamed_ids, ids);
    let streamed_data: Vec<Value> = streamed.into_iter().map(|(_, _, d)| d).collect();
    assert_eq!(&streamed_data, events);

    // Resuming from the middle, on either instance, gives exactly the rest.
    for base in [&app.api, &other] {
        let rest = app.sse(base, &id, Some(4)).await;
        assert_eq!(
            rest.iter().map(|(i, _, _)| *i).collect::<Vec<_>>(),
            (5..=9).collect::<Vec<_>>()
        );
    }
    let query_resume = app
        .get_json(&format!("/v1/builds/{id}/events?after=3&limit=2"))
        .await;
    assert_eq!(
        query_resume["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [4, 5]
    );
    assert_eq!(query_resume["lastEventId"], 5);
    let none_after = app.get_json(&format!("/v1/builds/{id}/events?after=9")).await;
    assert_eq!(none_after["events"], json!([]));
    assert_eq!(none_after["lastEventId"], 9);

    // The build itself says how far it is and what happened last.
    assert_eq!(build["progress"], 100);
    assert_eq!(build["latestEvent"]["type"], "deploy_completed");
    assert_eq!(build["latestEvent"]["id"], 9);
}

#[tokio::test]
async fn a_failed_build_ends_with_build_failed_naming_the_step() {
    let app = spawn_app(Options::default()).await;
    let id = app
        .submit(&build_body(
            "u_ev",
            &unique("bad"),
            project("node -e 'process.exit(3)'"),
        ))
        .await;
    let streamed = app.sse(&app.api, &id, None).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "failed");
    let polled = app.get_json(&format!("/v1/builds/{id}/events")).await;
    let events = polled["events"].as_array().unwrap();
    assert_eq!(
        types(events),
        [
            "build_queued",
            "build_started",
            "install_started",
            "install_completed",
            "build_step_started",
            "build_failed"
        ]
    );
    let failed = &events[5];
    assert_eq!(failed["data"]["step"], "build");
    assert_eq!(failed["data"]["reason"], build["error"]);
    assert_eq!(failed["progress"], 100);
    assert_eq!(streamed.len(), 6);
    assert_eq!(streamed[5].1, "build_failed");
    assert_eq!(build["latestEvent"]["type"], "build_failed");
}

#[tokio::test]
async fn a_queued_build_has_its_first_event_and_bad_event_queries_are_refused() {
    let app = spawn_app(Options::without_builders()).await;
    let id = app
        .submit(&build_body("u_ev", &unique("q"), project("node build.js")))
        .await;
    let build = app.get_json(&format!("/v1/builds/{id}")).await;
    assert_eq!(build["progress"], 0);
    assert_eq!(build["latestEvent"]["type"], "build_queued");
    assert_eq!(build["latestEvent"]["id"], 1);

    for (path, status) in [
        (format!("/v1/builds/{id}/events?after=-1"), 400),
        (format!("/v1/builds/{id}/events?limit=0"), 400),
        (format!("/v1/builds/{id}/events?limit=1001"), 400),
        (format!("/v1/builds/{id}/events?since=1"), 400),
        ("/v1/builds/not-an-id/events".to_owned(), 400),
        ("/v1/builds/01jc0000000000000000000000/events".to_owned(), 404),
        (
            "/v1/builds/01jc0000000000000000000000/events/stream".to_owned(),
            404,
        ),
    ] {
        let res = app.get(&path).await;
        assert_eq!(res.status(), status, "GET {path}");
        let body: Value = res.json().await.unwrap();
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let res = app
        .client
        .get(format!("{}/v1/builds/{id}/events/stream", app.api))
        .bearer_auth(crate::helpers::TOKEN)
        .header("Last-Event-ID", "soon")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // Events are behind authentication like every /v1 route.
    let res = app
        .client
        .get(format!("{}/v1/builds/{id}/events", app.api))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn a_stopping_api_ends_its_streams_with_a_reconnect_message() {
    use std::time::{Duration, Instant};
    let app = spawn_app(Options::without_builders()).await;
    let site = json!([{ "path": "index.html", "content": "<h1>waits</h1>" }]);
    let id = app.submit(&build_body("u_stop", &unique("stop"), site)).await;
    let mut streams = Vec::new();
    for path in [
        format!("/v1/builds/{id}/events/stream"),
        format!("/v1/builds/{id}/logs?follow=true"),
    ] {
        let res = app
            .client
            .get(format!("{}{path}", app.api))
            .bearer_auth(crate::helpers::TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        streams.push(res);
    }
    // The event stream has sent the build's first event: it is live.
    let first = streams[0].chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("build_queued"));

    let stopping = Instant::now();
    app.api_stop.cancel();
    for mut res in streams {
        let mut rest = String::new();
        let read = async {
            while let Some(chunk) = res.chunk().await.expect("the stream ends cleanly, not broken") {
                rest.push_str(&String::from_utf8_lossy(&chunk));
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the stream ends when the API stops");
        assert!(
            rest.ends_with("retry: 1000\n: kiln-api is shutting down; reconnect to resume\n\n"),
            "{rest:?}"
        );
    }
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
    // Stopped: no new connection is served.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = app.client.get(format!("{}/healthz", app.api)).send().await;
    assert!(after.is_err(), "{after:?}");
}
