//! Rate limits, quotas and caps: the per-IP limit (and who it spares), the trusted proxy's
//! client-IP header, the fleet-wide quotas across two API instances, oversized heads, slow
//! clients, and the cap on streams per client. Each refusal is a 4xx with a JSON message, and
//! the service answers others right after.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{build_body, spawn_app, unique, Options, TestApp, TOKEN};

fn with(env: &[(&'static str, &str)]) -> Options {
    let mut o = Options::without_builders();
    o.env = env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    o
}

fn site(text: &str) -> Value {
    json!([{ "path": "index.html", "content": format!("<h1>{text}</h1>") }])
}

async fn user_token(app: &TestApp, user: &str) -> String {
    let (status, body) = app
        .send_json("POST", "/v1/tokens", &json!({ "userId": user }))
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// Status, `Retry-After` and JSON body of a response.
async fn answer(res: reqwest::Response) -> (u16, Option<u64>, Value) {
    let status = res.status().as_u16();
    let retry = res.headers().get("retry-after").map(|v| {
        v.to_str()
            .unwrap()
            .parse::<u64>()
            .expect("Retry-After is whole seconds")
    });
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"));
    (status, retry, body)
}

async fn get_as(app: &TestApp, token: Option<&str>, path: &str) -> (u16, Option<u64>, Value) {
    let mut req = app.client.get(format!("{}{path}", app.api));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    answer(req.send().await.unwrap()).await
}

/// `/healthz` and `/readyz` answer 200 (neither is rate limited), each on a new connection.
async fn healthy(app: &TestApp) {
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for path in ["/healthz", "/readyz"] {
        let res = fresh.get(format!("{}{path}", app.api)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn the_per_ip_limit_answers_429_with_retry_after_and_spares_the_back_end_and_operators() {
    let app = spawn_app(with(&[("KILN_RATE_LIMIT_PER_IP", "4/hour")])).await;
    // The back end (signed) and the operator make a token and a build: not counted.
    let alice = user_token(&app, "u_alice").await;
    let id = app.submit(&build_body("u_alice", "p", site("a"))).await;

    for i in 0..4 {
        let (status, _, body) = get_as(&app, Some(&alice), &format!("/v1/builds/{id}")).await;
        assert_eq!(status, 200, "request {i}: {body}");
    }
    let (status, retry, body) = get_as(&app, Some(&alice), &format!("/v1/builds/{id}")).await;
    assert_eq!(status, 429, "{body}");
    // 4/hour: one more every 15 minutes.
    let retry = retry.expect("a 429 says when to retry");
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("rate limit exceeded: 4/hour per client address"),
        "{body}"
    );
    assert_eq!(body["retryAfter"], retry);

    // The same address without credentials, with a wrong token, on a public route: throttled too.
    for (token, path) in [
        (None, "/v1/builds"),
        (Some("kiln_ut_guess"), "/v1/builds"),
        (None, "/openapi.json"),
    ] {
        let (status, retry, body) = get_as(&app, token, path).await;
        assert_eq!((status, retry.is_some()), (429, true), "{path}: {body}");
    }
    // The operator, the back end and health checks are not counted.
    let (status, _, body) = get_as(&app, Some(TOKEN), &format!("/v1/builds/{id}")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .send_json("GET", &format!("/v1/builds/{id}"), &Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    healthy(&app).await;
}

#[tokio::test]
async fn guessing_tokens_or_signatures_is_throttled() {
    let app = spawn_app(with(&[("KILN_RATE_LIMIT_PER_IP", "3/hour")])).await;
    for i in 0..3 {
        let (status, _, body) = get_as(&app, Some(&format!("kiln_ut_{i:064}")), "/v1/builds").await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, _, body) = get_as(&app, Some("kiln_ut_one-more"), "/v1/builds").await;
    assert_eq!(status, 429, "{body}");
    // A forged signature counts against the same address.
    let res = app
        .client
        .post(format!("{}/v1/builds", app.api))
        .header("X-Kiln-Timestamp", chrono::Utc::now().timestamp().to_string())
        .header("X-Kiln-Signature", format!("sha256={}", "0".repeat(64)))
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, retry, body) = answer(res).await;
    assert_eq!((status, retry.is_some()), (429, true), "{body}");
    // The real back end still gets through.
    app.submit(&build_body("u", "p", site("x"))).await;
}

#[tokio::test]
async fn the_client_ip_header_is_believed_only_from_a_trusted_proxy() {
    // 127.0.0.2 is the proxy; 127.0.0.1 is a client that writes the header itself.
    let app = spawn_app(with(&[
        ("KILN_RATE_LIMIT_PER_IP", "2/hour"),
        ("KILN_TRUSTED_PROXIES", "127.0.0.2/32"),
        ("KILN_CLIENT_IP_HEADER", "X-Forwarded-For"),
    ]))
    .await;
    let from = |source: &str| {
        reqwest::Client::builder()
            .local_address(Some(source.parse().unwrap()))
            .build()
            .unwrap()
    };
    let direct = from("127.0.0.1");
    let proxy = from("127.0.0.2");
    let hit = |client: &reqwest::Client, forwarded: &str| {
        client
            .get(format!("{}/openapi.json", app.api))
            .header("X-Forwarded-For", forwarded.to_owned())
            .send()
    };

    // A spoofed header from an untrusted peer changes nothing: the peer's own bucket.
    let mut direct_statuses = Vec::new();
    for i in 0..4 {
        direct_statuses.push(
            hit(&direct, &format!("198.51.100.{i}"))
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(direct_statuses, [200, 200, 429, 429]);

    // Through the proxy each client has its own bucket, named by the header.
    let mut a = Vec::new();
    for _ in 0..3 {
        a.push(
            hit(&proxy, "6.6.6.6, 203.0.113.1")
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        a,
        [200, 200, 429],
        "the right-most address the proxy added is the client"
    );
    let res = hit(&proxy, "203.0.113.2").await.unwrap();
    assert_eq!(res.status(), 200, "another client behind the proxy");
    // No header from the proxy: the proxy's own address (a bucket of its own, still unused).
    let res = proxy
        .get(format!("{}/openapi.json", app.api))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    healthy(&app).await;
}

/// Submits `bodies` at once, alternating between the two API instances; the statuses and answers.
async fn burst(app: &TestApp, bases: &[String], bodies: Vec<Value>) -> Vec<(u16, Option<u64>, Value)> {
    join_all(bodies.into_iter().enumerate().map(|(i, body)| {
        let req = app.signed_request(
            &bases[i % bases.len()],
            "POST",
            "/v1/builds",
            body.to_string().as_bytes(),
        );
        async move {
            let res = req.send().await.unwrap();
            answer(res).await
        }
    }))
    .await
}

fn count(answers: &[(u16, Option<u64>, Value)], status: u16) -> usize {
    answers.iter().filter(|(s, _, _)| *s == status).count()
}

#[tokio::test]
async fn the_new_projects_quota_holds_across_two_api_instances_under_concurrency() {
    let app = spawn_app(with(&[
        ("KILN_QUOTA_NEW_PROJECTS_PER_HOUR", "5"),
        ("KILN_QUOTA_REBUILDS_PER_HOUR", "off"),
    ]))
    .await;
    let bases = vec![app.api.clone(), app.another_api().await];
    let user = unique("u");
    let bodies = (0..24)
        .map(|i| build_body(&user, &format!("p{i}"), site(&format!("p{i}"))))
        .collect();
    let answers = burst(&app, &bases, bodies).await;
    assert_eq!(
        count(&answers, 202),
        5,
        "exactly the quota is admitted: {answers:?}"
    );
    assert_eq!(count(&answers, 429), 19, "{answers:?}");
    for (status, retry, body) in answers.iter().filter(|(s, _, _)| *s == 429) {
        assert_eq!(body["quota"], "new_projects_per_user", "{status}: {body}");
        assert_eq!(
            (body["limit"].as_u64(), body["window"].as_str()),
            (Some(5), Some("1h")),
            "{body}"
        );
        let retry = retry.expect("a 429 says when to retry");
        assert!((3500..=3600).contains(&retry), "Retry-After {retry}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("quota exceeded: 5 new projects per user per 1h"),
            "{body}"
        );
    }
    // Nothing stored or queued for the refused ones.
    assert_eq!(app.version_count().await, 5);
    assert_eq!(app.queue_depth().await, 5);
    let (mut redis, keys) = app.redis().await;
    let counted: u64 = redis::cmd("ZCARD")
        .arg(keys.quota_new_projects(&user))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(counted, 5);

    // Per user: another user is not affected; a rebuild of an admitted project is not a new one.
    app.submit(&build_body(&unique("u"), "p0", site("other"))).await;
    let admitted = answers.iter().find(|(s, _, _)| *s == 202).unwrap();
    let project = admitted.2["projectId"].as_str().unwrap();
    let (status, body) = app
        .send_json(
            "POST",
            "/v1/builds",
            &json!({ "userId": user, "projectId": project, "files": site("again"), "onConflict": "supersede" }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    healthy(&app).await;
}

#[tokio::test]
async fn the_rebuilds_quota_refuses_before_it_replaces_and_counts_only_admitted_builds() {
    let app = spawn_app(with(&[
        ("KILN_QUOTA_NEW_PROJECTS_PER_HOUR", "off"),
        ("KILN_QUOTA_REBUILDS_PER_HOUR", "3"),
    ]))
    .await;
    let other = app.another_api().await;
    let user = unique("u");
    let first = app.submit(&build_body(&user, "p", site("first"))).await;
    let body = |n: usize| json!({ "userId": user, "projectId": "p", "files": site(&format!("v{n}")), "onConflict": "supersede" });

    // Three rebuilds, each superseding the queued one, on either instance.
    let mut last = first;
    for n in 0..3 {
        let base = if n % 2 == 0 { &app.api } else { &other };
        let res = app
            .client
            .post(format!("{base}/v1/builds"))
            .bearer_auth(TOKEN)
            .json(&body(n))
            .send()
            .await
            .unwrap();
        let (status, _, answer) = answer(res).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["replaced"]["buildId"], last.as_str());
        last = answer["buildId"].as_str().unwrap().to_owned();
    }
    let (blobs, rows) = (app.blob_count(), app.version_count().await);
    // The fourth is refused, and the queued build is still queued (not superseded by nothing).
    let (status, body_4) = app.send_json("POST", "/v1/builds", &body(3)).await;
    assert_eq!(status, 429, "{body_4}");
    assert_eq!(body_4["quota"], "rebuilds_per_project");
    assert_eq!(body_4["limit"], 3);
    assert_eq!(
        app.get_json(&format!("/v1/builds/{last}")).await["status"],
        "queued"
    );
    assert_eq!((app.blob_count(), app.version_count().await), (blobs, rows));
    // A plain conflict is still a 409 (it asks nothing of the quota).
    let (status, conflict) = app
        .send_json("POST", "/v1/builds", &build_body(&user, "p", site("dup")))
        .await;
    assert_eq!(
        (status, conflict["buildId"].as_str()),
        (409, Some(last.as_str())),
        "{conflict}"
    );

    // A burst of replacing rebuilds on a fresh project: never more admitted than the quota, and
    // exactly the admitted ones counted (refused and withdrawn requests give their unit back).
    let fresh = unique("burst");
    app.submit(&build_body(&user, &fresh, site("first"))).await;
    let bodies = (0..12)
        .map(|n| json!({ "userId": user, "projectId": fresh, "files": site(&format!("b{n}")), "onConflict": "supersede" }))
        .collect();
    let answers = burst(&app, &[app.api.clone(), other.clone()], bodies).await;
    let admitted = count(&answers, 202);
    assert!((1..=3).contains(&admitted), "{answers:?}");
    for (status, _, body) in &answers {
        assert!([202, 409, 429, 503].contains(status), "{status}: {body}");
        assert!(body["error"].is_string() || *status == 202, "{body}");
    }
    let (mut redis, keys) = app.redis().await;
    let counted: u64 = redis::cmd("ZCARD")
        .arg(keys.quota_rebuilds(&user, &fresh))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(counted as usize, admitted, "{answers:?}");
    let rows: i64 = sqlx::query_scalar("select count(*) from versions where project_id = $1")
        .bind(&fresh)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows as usize, 1 + admitted);
    healthy(&app).await;
}

#[tokio::test]
async fn retries_and_duplicates_cost_no_quota() {
    let app = spawn_app(with(&[
        ("KILN_QUOTA_NEW_PROJECTS_PER_HOUR", "2"),
        ("KILN_QUOTA_REBUILDS_PER_HOUR", "off"),
    ]))
    .await;
    let user = unique("u");
    let a = build_body(&user, "a", site("a"));
    let post = |body: &Value, key: Option<&str>| {
        let mut req = app.signed_request(&app.api, "POST", "/v1/builds", body.to_string().as_bytes());
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send()
    };
    let first = post(&a, Some("k-1")).await.unwrap();
    assert_eq!(first.status(), 202);
    // The client's retry replays the answer; the same request without a key is a 409.
    let again = post(&a, Some("k-1")).await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(post(&a, None).await.unwrap().status(), 409);
    // So the second unit is still there, and the third project is refused (and its key freed).
    assert_eq!(
        post(&build_body(&user, "b", site("b")), None)
            .await
            .unwrap()
            .status(),
        202
    );
    let (status, _, body) = answer(
        post(&build_body(&user, "c", site("c")), Some("k-3"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    let (status, _, body) = answer(
        post(&build_body(&user, "c", site("c")), Some("k-3"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        status, 429,
        "a refusal is not remembered: the retry is evaluated again: {body}"
    );
    assert_eq!(app.version_count().await, 2);
}

#[tokio::test]
async fn oversized_headers_and_bodies_get_431_and_413_with_a_message_and_the_service_stays_healthy() {
    let mut app = spawn_app(with(&[("KILN_MAX_HEADER_KB", "8"), ("KILN_MAX_BODY_MB", "1")])).await;
    // The server closes a connection whose request it refused unread: no connection is reused.
    app.client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // Every route that takes a JSON body holds it to KILN_MAX_BODY_MB, with a bearer token too
    // (a signed request's body is read, under the same cap, by authentication).
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(1024 * 1024 + 1));
    for path in [
        "/v1/builds",
        "/v1/webhooks",
        "/v1/tokens",
        "/v1/projects/u/p/rollback",
        "/build-preview-for-new-project",
        "/rebuild-preview",
    ] {
        let res = app
            .client
            .post(format!("{}{path}", app.api))
            .bearer_auth(TOKEN)
            .header("Content-Type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        let (status, _, body) = answer(res).await;
        assert_eq!(status, 413, "{path}: {body}");
        assert_eq!(body["error"], "the request body is larger than 1 MB", "{path}");
    }
    let res = app.signed("POST", "/v1/builds", big.as_bytes()).await;
    let (status, _, body) = answer(res).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("the request body is larger than 1 MB"))
    );

    let res = app
        .client
        .get(format!("{}/v1/builds", app.api))
        .bearer_auth(TOKEN)
        .header("X-Padding", "a".repeat(9 * 1024))
        .send()
        .await
        .unwrap();
    let (status, _, body) = answer(res).await;
    assert_eq!(status, 431, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("the limit is 8 KB"),
        "{body}"
    );
    // Many headers, each small: the same cap.
    let mut req = app.client.get(format!("{}/healthz", app.api));
    for i in 0..60 {
        req = req.header(format!("x-h{i}"), "b".repeat(200));
    }
    let (status, _, body) = answer(req.send().await.unwrap()).await;
    assert_eq!(status, 431, "{body}");
    // More than 96 headers (or a head past 128 KB) is refused by actix-http itself, before Kiln
    // sees the request: a 431 too, with no body.
    let mut req = app.client.get(format!("{}/healthz", app.api));
    for i in 0..100 {
        req = req.header(format!("x-h{i}"), "c");
    }
    assert_eq!(req.send().await.unwrap().status(), 431);
    healthy(&app).await;
    app.submit(&build_body("u", "p", site("after"))).await;
}

#[tokio::test]
async fn a_slowloris_connection_is_dropped_within_the_timeout_and_others_are_served() {
    let app = spawn_app(with(&[
        ("KILN_REQUEST_HEAD_TIMEOUT_SECS", "2"),
        ("KILN_REQUEST_BODY_TIMEOUT_SECS", "2"),
    ]))
    .await;
    let addr = app.api.trim_start_matches("http://").to_owned();

    // Headers one byte at a time, every 200 ms, forever: cut off after the head timeout.
    let slow_head = {
        let addr = addr.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
            let started = Instant::now();
            loop {
                if s.write_all(b"a").await.is_err() {
                    break;
                }
                let mut buf = [0u8; 512];
                match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => break,
                    Ok(Ok(n)) => {
                        let text = String::from_utf8_lossy(&buf[..n]).to_string();
                        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
                    }
                    Err(_) => {}
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "the slow client was never cut off"
                );
            }
            started.elapsed()
        }
    };
    // Meanwhile everyone else is served at once.
    let others = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..5 {
            let t = Instant::now();
            healthy(&app).await;
            assert!(t.elapsed() < Duration::from_secs(1));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (took, ()) = tokio::join!(slow_head, others);
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "cut off after {took:?}"
    );

    // A body that trickles: 408 with a message once the body timeout has passed.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/builds HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    loop {
        let _ = s.write_all(b" ").await;
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => {
                response.extend_from_slice(&buf[..n]);
                if response.windows(4).any(|w| w == b"\r\n\r\n") && response.ends_with(b"}") {
                    break;
                }
            }
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the trickling body was never cut off"
        );
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.contains("the request body did not arrive within 2 s"),
        "{text}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.version_count().await, 0);
    healthy(&app).await;
}

/// Opens a stream with `token`; the response (its body unread).
async fn open(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.api))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn streams_per_client_are_capped_and_given_back_when_they_end() {
    let app = spawn_app(with(&[("KILN_MAX_STREAMS_PER_CLIENT", "2")])).await;
    let user = unique("u");
    let token = user_token(&app, &user).await;
    let id = app.submit(&build_body(&user, "p", site("s"))).await;
    let events = format!("/v1/builds/{id}/events/stream");
    let logs = format!("/v1/builds/{id}/logs?follow=true");

    let mut first = open(&app, &token, &events).await;
    assert_eq!(first.status(), 200);
    // The replay arrives: the stream is really open.
    let chunk = first.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&chunk).contains("build_queued"));
    let second = open(&app, &token, &logs).await;
    assert_eq!(second.status(), 200);
    let (status, retry, body) = answer(open(&app, &token, &events).await).await;
    assert_eq!((status, retry), (429, Some(1)), "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("too many streams: 2"),
        "{body}"
    );
    let (status, _, _) = answer(open(&app, &token, &logs).await).await;
    assert_eq!(status, 429);
    // The operator relays many users' streams: not capped. Other requests are not streams.
    let op = open(&app, TOKEN, &events).await;
    assert_eq!(op.status(), 200);
    let (status, _, _) = get_as(&app, Some(&token), &format!("/v1/builds/{id}")).await;
    assert_eq!(status, 200);

    // A client that goes away gives its place back.
    drop(second);
    let started = Instant::now();
    let third = loop {
        let res = open(&app, &token, &logs).await;
        if res.status() == 200 {
            break res;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the place was never given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // A stream that ends (the build is cancelled: its final event) gives its place back too.
    let (status, body) = app
        .send_json("POST", &format!("/v1/builds/{id}/cancel"), &Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        let mut text = String::new();
        while let Some(c) = first.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&c));
        }
        text
    })
    .await
    .expect("the stream ends after the final event");
    assert!(rest.contains("build_cancelled"), "{rest}");
    let again = open(&app, &token, &events).await;
    assert_eq!(again.status(), 200, "the ended stream's place is free");
    drop((third, op, again));
    healthy(&app).await;
}
