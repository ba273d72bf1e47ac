//! Queue position and estimated start of builds waiting behind others.
use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options};

/// A project whose build takes `ms` milliseconds past install.
fn slow_project(ms: u64) -> Value {
    let script = format!(
        "setTimeout(() => {{ require('fs').mkdirSync('dist'); require('fs').writeFileSync('dist/index.html', 'slow'); }}, {ms});"
    );
    json!([
        { "path": "package.json", "content": json!({ "name": "p", "private": true, "scripts": { "build": "node build.js" } }).to_string() },
        { "path": "build.js", "content": script },
    ])
}

#[tokio::test]
async fn waiting_builds_know_their_place_and_when_they_should_start() {
    let app = spawn_app(Options::without_builders()).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            app.submit(&build_body("u_queue", &unique("q"), slow_project(1500)))
                .await,
        );
    }
    // No builder: every build knows its place, and that nothing will start it yet.
    for (i, id) in ids.iter().enumerate() {
        let b = app.get_json(&format!("/v1/builds/{id}")).await;
        assert_eq!(b["queuePosition"], i, "{b}");
        assert_eq!(b["estimatedStartAt"], Value::Null, "{b}");
        assert_eq!(b["liveBuilders"], 0, "{b}");
        assert!(b["note"].as_str().unwrap().contains("no live builders"), "{b}");
    }

    // A builder daemon joins the farm and takes the first build.
    tokio::spawn(kiln_builder::run(app.settings.clone(), app.shutdown.clone()));
    app.wait_for_status(&ids[0], "running").await;
    let second = app.get_json(&format!("/v1/builds/{}", ids[1])).await;
    assert_eq!(second["status"], "queued", "{second}");
    assert_eq!(second["queuePosition"], 0, "{second}");
    assert_eq!(
        (second["liveBuilders"].clone(), second["slots"].clone()),
        (json!(1), json!(1)),
        "{second}"
    );
    assert_eq!(second["running"], 1, "{second}");
    assert!(
        second["note"].as_str().unwrap().contains("no finished builds"),
        "{second}"
    );
    let third = app.get_json(&format!("/v1/builds/{}", ids[2])).await;
    assert_eq!(third["queuePosition"], 1, "{third}");

    // Once one build has finished, its run time is the estimate: the third build waits for the
    // second (running) to free the only slot.
    let first = app.wait(&ids[0]).await;
    assert_eq!(first["status"], "deployed", "{first}");
    app.wait_for_status(&ids[1], "running").await;
    let asked = chrono::Utc::now();
    let third = app.get_json(&format!("/v1/builds/{}", ids[2])).await;
    assert_eq!(third["queuePosition"], 0, "{third}");
    let median = third["medianBuildSecs"].as_f64().unwrap();
    let run = chrono::DateTime::parse_from_rfc3339(first["finishedAt"].as_str().unwrap()).unwrap()
        - chrono::DateTime::parse_from_rfc3339(first["startedAt"].as_str().unwrap()).unwrap();
    assert!(
        (median - run.num_milliseconds() as f64 / 1000.0).abs() < 0.01,
        "{third} vs {first}"
    );
    assert!(median >= 1.5, "{third}");
    assert_eq!(
        third["estimatedWaitSecs"].as_f64().unwrap(),
        (median * 10.0).round() / 10.0
    );
    let start = chrono::DateTime::parse_from_rfc3339(third["estimatedStartAt"].as_str().unwrap()).unwrap();
    let ahead = (start.with_timezone(&chrono::Utc) - asked).num_milliseconds() as f64 / 1000.0;
    assert!(
        (ahead - median).abs() < 1.0,
        "starts about one build from now: {ahead} s, {third}"
    );

    // Only queued builds carry a position.
    let done = app.wait(&ids[2]).await;
    assert!(done.get("queuePosition").is_none(), "{done}");
}
