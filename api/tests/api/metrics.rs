//! `GET /metrics`: the API's farm-wide gauges (from Postgres and Redis) and counters, and each
//! builder daemon's own counters and histograms on its `KILN_METRICS_ADDR` listener.

use std::time::{Duration, Instant};

use kiln_shared::metrics::sample;
use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options, TestApp};

fn site(text: &str) -> Value {
    json!([{ "path": "index.html", "content": format!("<h1>{text}</h1>") }])
}

async fn api_metrics(app: &TestApp) -> String {
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    let kind = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    res.text().await.unwrap()
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
}

#[tokio::test]
async fn metrics_show_the_queue_and_what_each_builder_did() {
    let app = spawn_app(Options::without_builders()).await;
    let res = app
        .client
        .get(format!("{}/metrics", app.api))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "the API's metrics need an operator token");

    // No builder yet: both builds wait.
    let user = "u_metrics";
    let first = app.submit(&build_body(user, &unique("a"), site("a"))).await;
    let second = app.submit(&build_body(user, &unique("b"), site("b"))).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let text = api_metrics(&app).await;
    assert_eq!(value(&text, "kiln_builds", &[("status", "queued")]), 2.0);
    assert_eq!(value(&text, "kiln_builds", &[("status", "running")]), 0.0);
    let oldest = value(&text, "kiln_oldest_queued_seconds", &[]);
    assert!((1.0..60.0).contains(&oldest), "oldest waiting build: {oldest} s");
    assert_eq!(value(&text, "kiln_stream_length", &[]), 2.0);
    assert_eq!(value(&text, "kiln_live_builders", &[]), 0.0);
    assert_eq!(value(&text, "kiln_farm_readable", &[("role", "api")]), 1.0);

    let (status, body) = app
        .send_json("POST", &format!("/v1/builds/{second}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let text = api_metrics(&app).await;
    let finished = "kiln_builds_finished_total";
    assert_eq!(value(&text, finished, &[("status", "cancelled")]), 1.0);
    assert_eq!(value(&text, "kiln_cancellations_total", &[]), 1.0);

    // A builder takes the first build, and a failing one after it.
    let _builder = app.start_builder("metrics-one", |_| {});
    app.wait_for_status(&first, "deployed").await;
    let failing = json!([
        { "path": "package.json", "content": json!({ "name": "p", "private": true, "scripts": { "build": "exit 3" } }).to_string() },
    ]);
    let failed = app.submit(&build_body(user, &unique("c"), failing)).await;
    app.wait_for_status(&failed, "failed").await;

    let addr = builder_metrics_addr(&app).await;
    let text = settled_builder_metrics(&app, &addr).await;
    assert_eq!(
        value(&text, finished, &[("status", "deployed"), ("role", "builder")]),
        1.0
    );
    assert_eq!(value(&text, finished, &[("status", "failed")]), 1.0);
    let count = "kiln_build_phase_seconds_count";
    // Queue wait and total for both builds; install and build for the one with a package.json;
    // upload only for the one that got that far.
    assert_eq!(value(&text, count, &[("phase", "queue_wait")]), 2.0);
    assert_eq!(value(&text, count, &[("phase", "total")]), 2.0);
    assert_eq!(value(&text, count, &[("phase", "upload")]), 1.0);
    assert_eq!(value(&text, count, &[("phase", "install")]), 1.0);
    // The static site ran no process and gave its warm sandbox back; the install started in
    // one (started when the daemon did).
    assert_eq!(
        value(&text, "kiln_install_starts_total", &[("sandbox", "warm")]),
        1.0
    );
    let waited = value(&text, "kiln_build_phase_seconds_sum", &[("phase", "queue_wait")]);
    assert!(
        waited >= 1.0,
        "the first build waited over a second for a builder: {waited}"
    );
    assert!(value(&text, "kiln_heartbeats_total", &[("result", "ok")]) >= 1.0);
    assert_eq!(value(&text, "kiln_slots", &[]), 1.0);
    assert_eq!(value(&text, "kiln_reclaims_total", &[]), 0.0);
    let health = app
        .client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let text = api_metrics(&app).await;
    assert_eq!(value(&text, "kiln_builds", &[("status", "queued")]), 0.0);
    assert_eq!(value(&text, "kiln_oldest_queued_seconds", &[]), 0.0);
    assert_eq!(value(&text, "kiln_live_builders", &[]), 1.0);
    assert_eq!(value(&text, "kiln_fleet_slots", &[]), 1.0);
}

/// The builder's metrics once it has finished its bookkeeping: a build's status is recorded
/// before its worker lets go of it, so the running gauge may still show it for a moment.
async fn settled_builder_metrics(app: &TestApp, addr: &str) -> String {
    let started = Instant::now();
    loop {
        let text = app
            .client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if value(&text, "kiln_running_builds", &[]) == 0.0 {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the builder still runs a build 10 s after the last one ended:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The builder's metrics listener, from its fleet report.
async fn builder_metrics_addr(app: &TestApp) -> String {
    let started = Instant::now();
    loop {
        let fleet = app.get_json("/v1/builders").await;
        if let Some(addr) = fleet["builders"][0]["metricsAddr"].as_str() {
            return addr.to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{fleet}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
