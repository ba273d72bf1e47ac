//! Every error answer is an RFC 9457 problem (`application/problem+json`): each family of
//! refusal provoked for real on the running API (and the preview listener), with its `type`
//! code, constant `title`, numeric `status`, `detail`, and the members answers had before
//! (`error`, `buildId`, `retryAfter`, `quota`...). And the book lists exactly the codes the API
//! has, with their statuses.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kiln_api::problem::{ProblemType, TYPE_PREFIX};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{build_body, spawn_app, Options, TestApp, TOKEN};

const USER: &str = "u_problems";

fn site() -> Value {
    json!([{ "path": "index.html", "content": "<h1>problems</h1>" }])
}

fn type_of(code: &str) -> ProblemType {
    *ProblemType::ALL
        .iter()
        .find(|t| t.code() == code)
        .unwrap_or_else(|| panic!("no problem type {code}"))
}

/// Checks that `res` is a problem of `code` (its status, media type and members) and returns
/// its body.
async fn problem(what: &str, res: reqwest::Response, code: &str) -> Value {
    let kind = type_of(code);
    let status = res.status().as_u16();
    let media = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    assert_eq!(status, kind.status().as_u16(), "{what}: {text}");
    assert_eq!(
        media.as_deref(),
        Some("application/problem+json"),
        "{what}: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
    assert_eq!(body["type"], format!("{TYPE_PREFIX}{code}"), "{what}: {body}");
    assert_eq!(body["title"], kind.title(), "{what}: {body}");
    assert_eq!(body["status"], status, "{what}: {body}");
    let detail = body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no detail: {body}"));
    assert!(!detail.is_empty(), "{what}: {body}");
    assert_eq!(body["error"], detail, "{what}: error is today's message: {body}");
    if let Some(wait) = body.get("retryAfter") {
        let header = headers["retry-after"].to_str().unwrap();
        assert_eq!(
            wait.to_string(),
            header,
            "{what}: Retry-After and retryAfter agree"
        );
    }
    body
}

fn with(env: &[(&'static str, &str)]) -> Options {
    let mut o = Options::without_builders();
    o.env = env.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    o
}

async fn bearer(app: &TestApp, method: reqwest::Method, path: &str, body: String) -> reqwest::Response {
    app.client
        .request(method, format!("{}{path}", app.api))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_family_of_error_is_a_problem_with_its_code_and_todays_members() {
    let mut app = spawn_app(with(&[
        ("KILN_MAX_BODY_MB", "1"),
        ("KILN_MAX_HEADER_KB", "8"),
        ("KILN_QUOTA_NEW_PROJECTS_PER_HOUR", "2"),
        ("KILN_QUOTA_REBUILDS_PER_HOUR", "off"),
        ("KILN_RATE_LIMIT_PER_IP", "30/hour"),
        ("KILN_REQUEST_BODY_TIMEOUT_SECS", "1"),
    ]))
    .await;
    // A refused request's connection may be closed unread: none is reused.
    app.client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();

    // 400: a body that is not JSON, and a malformed id in the path.
    let res = app.signed("POST", "/v1/builds", b"{").await;
    let body = problem("bad JSON", res, "invalid_json").await;
    assert!(
        body["detail"].as_str().unwrap().starts_with("invalid JSON"),
        "{body}"
    );
    problem("bad id", app.get("/v1/builds/not-an-id").await, "bad_request").await;

    // 404: an unknown route, and a missing build.
    let res = app.client.get(format!("{}/nope", app.api)).send().await.unwrap();
    let body = problem("unknown route", res, "not_found").await;
    assert_eq!(body["error"], "no such route; see /openapi.json");
    let res = app.get("/v1/builds/01jc0000000000000000000000").await;
    problem("missing build", res, "not_found").await;

    // 405: a route that exists, with another method.
    let res = bearer(&app, reqwest::Method::POST, "/metrics", String::new()).await;
    problem("wrong method", res, "method_not_allowed").await;

    // 401: no credentials; the challenge header stays.
    let res = app
        .client
        .get(format!("{}/v1/builds", app.api))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    problem("no credentials", res, "unauthorized").await;

    // 409: another build of the project in flight, named in buildId; a retry of a build
    // that did not fail.
    let first = app.submit(&build_body(USER, "p1", site())).await;
    let res = app.post_build(&build_body(USER, "p1", site())).await;
    let body = problem("build in flight", res, "build_in_flight").await;
    assert_eq!(body["buildId"], first.as_str());
    let res = app
        .signed("POST", &format!("/v1/builds/{first}/retry"), b"{}")
        .await;
    let body = problem("retry of a queued build", res, "wrong_status").await;
    assert_eq!(body["buildId"], first.as_str());

    // 422: the same Idempotency-Key with another body; a path that escapes; a bad id.
    let keyed = |body: &Value| {
        let raw = body.to_string();
        app.signed_request(&app.api, "POST", "/v1/builds", raw.as_bytes())
            .header("Idempotency-Key", "problems-key")
    };
    let res = keyed(&build_body(USER, "p2", site())).send().await.unwrap();
    assert_eq!(res.status(), 202);
    let other = build_body(USER, "p2", json!([{ "path": "index.html", "content": "other" }]));
    let res = keyed(&other).send().await.unwrap();
    problem("key reused", res, "idempotency_key_reused").await;
    let escaping = build_body(USER, "p9", json!([{ "path": "../etc/passwd", "content": "x" }]));
    let res = app.post_build(&escaping).await;
    problem("escaping path", res, "invalid_path").await;
    let res = app.post_build(&build_body("not a user!", "p9", site())).await;
    problem("bad user id", res, "validation_failed").await;

    // 429: the new-projects quota (2 per hour: p1 and p2 are admitted), with all its members.
    let res = app.post_build(&build_body(USER, "p3", site())).await;
    assert!(res.headers().contains_key("retry-after"));
    let body = problem("over quota", res, "quota_exceeded").await;
    assert_eq!(body["quota"], "new_projects_per_user");
    assert_eq!(body["limit"], 2);
    assert_eq!(body["window"], "1h");
    assert!(
        body["retryAfter"]
            .as_u64()
            .is_some_and(|s| (1..=3600).contains(&s)),
        "{body}"
    );

    // 413: over KILN_MAX_BODY_MB, with a bearer token (actix-web's cap) and signed (read by
    // authentication).
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(1024 * 1024 + 1));
    let res = bearer(&app, reqwest::Method::POST, "/v1/webhooks", big.clone()).await;
    let body = problem("too large, bearer", res, "payload_too_large").await;
    assert_eq!(body["error"], "the request body is larger than 1 MB");
    let res = app.signed("POST", "/v1/builds", big.as_bytes()).await;
    problem("too large, signed", res, "payload_too_large").await;

    // 431: headers over KILN_MAX_HEADER_KB.
    let res = app
        .client
        .get(format!("{}/v1/builds", app.api))
        .bearer_auth(TOKEN)
        .header("X-Padding", "a".repeat(9 * 1024))
        .send()
        .await
        .unwrap();
    problem("big head", res, "headers_too_large").await;

    // 404 on the preview listener: a problem too, revalidated by caches.
    let res = app.preview("nobody-0123456789ab", "/").await;
    assert_eq!(res.headers()["cache-control"], "no-cache");
    problem("preview of nothing", res, "not_found").await;
    let res = app.preview(&first, "/").await;
    let body = problem("preview of a queued build", res, "not_found").await;
    assert!(
        body["detail"].as_str().unwrap().contains("is not deployed"),
        "{body}"
    );

    // 408: a body that does not arrive within KILN_REQUEST_BODY_TIMEOUT_SECS.
    let head = timed_out_body(&app).await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: application/problem+json"), "{head}");
    assert!(
        head.contains(&format!("\"type\":\"{TYPE_PREFIX}request_timeout\"")),
        "{head}"
    );

    // 429: the per-IP rate limit, on a public route.
    let started = Instant::now();
    let limited = loop {
        let res = app
            .client
            .get(format!("{}/openapi.json", app.api))
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            break res;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never rate limited");
    };
    let body = problem("rate limited", limited, "rate_limited").await;
    assert!(body["retryAfter"].as_u64().is_some(), "{body}");
}

#[tokio::test]
async fn a_dependency_down_is_a_problem_too() {
    let app = spawn_app(Options::without_builders()).await;
    // A second API on the same database, pointed at a Redis that is not there.
    let mut settings = app.settings.clone();
    settings.redis.url = "redis://127.0.0.1:1".to_owned().into();
    settings.api.addr = "127.0.0.1:0".into();
    settings.preview.addr = "127.0.0.1:0".into();
    let down = kiln_api::Application::build(settings).await.unwrap();
    let url = format!("http://127.0.0.1:{}", down.port());
    tokio::spawn(down.run_until_stopped());

    let res = app.client.get(format!("{url}/readyz")).send().await.unwrap();
    let body = problem("readiness", res, "not_ready").await;
    assert!(
        body["detail"].as_str().unwrap().starts_with("not ready: redis"),
        "{body}"
    );
    assert_eq!(body["checks"]["postgres"], "ok");

    let res = app
        .client
        .post(format!("{url}/v1/builds"))
        .bearer_auth(TOKEN)
        .body(build_body(USER, "p", site()).to_string())
        .send()
        .await
        .unwrap();
    let body = problem("queue down", res, "queue_unavailable").await;
    assert!(body["buildId"].as_str().is_some(), "{body}");

    let res = app
        .client
        .get(format!("{url}/v1/builders"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let body = problem("fleet registry down", res, "unavailable").await;
    assert_eq!(body["error"], "the fleet registry (Redis) is unavailable");
}

/// A POST whose body trickles and stops: the answer's head and body as text.
async fn timed_out_body(app: &TestApp) -> String {
    let addr = app.api.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/builds HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
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
    }
    String::from_utf8_lossy(&response).into_owned()
}

const PAGES: [&str; 2] = ["docs/reference/api.md", "docs/guides/backend-integration.md"];

/// `(code, status)` of each row of a page's table of problem types: a row whose first cell is a
/// code in backticks and whose second is a status.
fn documented(markdown: &str) -> Vec<(String, u16)> {
    let mut rows = Vec::new();
    for line in markdown.lines() {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 3 {
            continue;
        }
        let (Some(code), Ok(status)) = (
            cells[0].strip_prefix('`').and_then(|c| c.strip_suffix('`')),
            cells[1].trim_matches('*').parse::<u16>(),
        ) else {
            continue;
        };
        rows.push((code.to_owned(), status));
    }
    rows
}

#[test]
fn the_book_lists_exactly_the_problem_types_with_their_statuses() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let in_code: BTreeSet<(String, u16)> = ProblemType::ALL
        .iter()
        .map(|t| (t.code().to_owned(), t.status().as_u16()))
        .collect();
    assert_eq!(
        kiln_api::problem::codes().len(),
        in_code.len(),
        "codes() lists every type once"
    );
    for page in PAGES {
        let markdown = std::fs::read_to_string(root.join(page)).expect(page);
        let rows = documented(&markdown);
        let in_book: BTreeSet<(String, u16)> = rows.iter().cloned().collect();
        assert_eq!(in_book.len(), rows.len(), "{page} lists a problem type twice");
        let missing: Vec<_> = in_code.difference(&in_book).collect();
        let extra: Vec<_> = in_book.difference(&in_code).collect();
        assert!(
            missing.is_empty(),
            "problem types the API has but {page} does not list (or with another status): {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "problem types {page} lists but the API does not have: {extra:?}"
        );
    }
}
