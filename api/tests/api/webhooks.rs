//! Webhooks, against real HTTP receivers started in the test: signatures, filters, the retry
//! schedule, redelivery, a receiver that hangs, and pending deliveries across an API restart.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{build_body, spawn_app, unique, Options, TestApp};

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    signature: String,
    delivery: String,
    event: String,
    attempt: String,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A receiver: answers each request with the next queued status, else the default one;
/// status 0 means never answer.
#[derive(Clone, Default)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
    default: Arc<Mutex<u16>>,
}

impl Receiver {
    async fn start(default: u16) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let this = Receiver {
            url: format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port()),
            default: Arc::new(Mutex::new(default)),
            ..Receiver::default()
        };
        let state = this.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .default_service(web::to(receive))
        })
        .listen(listener)
        .unwrap()
        .workers(1)
        .disable_signals()
        .run();
        tokio::spawn(server);
        this
    }

    fn set_default(&self, status: u16) {
        *self.default.lock().unwrap() = status;
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `n` requests came.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(started.elapsed() < within, "{} of {n} requests came", got.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, r: web::Data<Receiver>) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    r.got.lock().unwrap().push(Received {
        at: Instant::now(),
        signature: header("x-kiln-signature"),
        delivery: header("x-kiln-delivery"),
        event: header("x-kiln-event"),
        attempt: header("x-kiln-attempt"),
        body: body.to_vec(),
    });
    let status = r
        .answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(*r.default.lock().unwrap());
    if status == 0 {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
}

/// What the README tells receivers to do: recompute the HMAC of "{t}.{body}" and compare in
/// constant time (`verify_slice`).
fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let age = chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap();
    if age.abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

/// Subscribes `url`; returns the webhook's id and secret.
async fn subscribe(app: &TestApp, body: Value) -> (String, String) {
    let (status, hook) = app.send_json("POST", "/v1/webhooks", &body).await;
    assert_eq!(status, 201, "{hook}");
    (
        hook["id"].as_str().unwrap().to_owned(),
        hook["secret"].as_str().unwrap().to_owned(),
    )
}

async fn deliveries(app: &TestApp, base: &str, hook: &str) -> Vec<Value> {
    app.get_json_at(base, &format!("/v1/webhooks/{hook}/deliveries?limit=100"))
        .await["deliveries"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until every delivery of `hook` has left `pending`.
async fn settled(app: &TestApp, base: &str, hook: &str, within: Duration) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let list = deliveries(app, base, hook).await;
        if !list.is_empty() && list.iter().all(|d| d["status"] != "pending") {
            return list;
        }
        assert!(started.elapsed() < within, "deliveries still pending: {list:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn static_site() -> Value {
    json!([{ "path": "index.html", "content": "<h1>hooks</h1>" }])
}

#[tokio::test]
async fn every_event_reaches_its_subscribers_signed_and_filters_hold() {
    let app = spawn_app(Options::default()).await;
    let all = Receiver::start(200).await;
    let deploys = Receiver::start(200).await;
    let others = Receiver::start(200).await;
    let (all_id, all_secret) = subscribe(&app, json!({ "url": all.url, "description": "everything" })).await;
    assert!(
        all_secret.starts_with("whsec_") && all_secret.len() == 6 + 64,
        "{all_secret}"
    );
    let (deploys_id, deploys_secret) = subscribe(
        &app,
        json!({ "url": deploys.url, "eventTypes": ["deploy_completed"] }),
    )
    .await;
    let (others_id, _) = subscribe(&app, json!({ "url": others.url, "userId": "somebody_else" })).await;

    // The secret is shown once: never in a list or a read.
    let listed = app.get_json("/v1/webhooks").await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 3, "{listed}");
    assert!(!listed.to_string().contains("whsec_"), "{listed}");
    let one = app.get_json(&format!("/v1/webhooks/{deploys_id}")).await;
    assert_eq!(one["eventTypes"], json!(["deploy_completed"]));
    assert!(one.get("secret").is_none(), "{one}");

    let project = unique("hooks");
    let id = app.submit(&build_body("u_hooks", &project, static_site())).await;
    assert_eq!(app.wait(&id).await["status"], "deployed");
    let events = app.final_events(&id).await;

    // Every event, signed with the subscription's secret, each body as documented.
    let got = all.wait_for(events.len(), Duration::from_secs(30)).await;
    let mut bodies: Vec<Value> = Vec::new();
    for r in &got {
        assert!(verify(&all_secret, &r.signature, &r.body), "signature of {r:?}");
        assert!(
            !verify(&deploys_secret, &r.signature, &r.body),
            "another secret does not verify"
        );
        let mut tampered = r.body.clone();
        tampered.push(b' ');
        assert!(!verify(&all_secret, &r.signature, &tampered));
        let body = r.json();
        assert_eq!(r.event, body["type"].as_str().unwrap());
        assert!(r.delivery.starts_with("dl_"), "{r:?}");
        assert_eq!(r.attempt, "1");
        bodies.push(body);
    }
    bodies.sort_by_key(|b| {
        b["id"]
            .as_str()
            .unwrap()
            .rsplit('-')
            .next()
            .unwrap()
            .parse::<i64>()
            .unwrap()
    });
    assert_eq!(bodies.len(), events.len());
    for (body, event) in bodies.iter().zip(&events) {
        assert_eq!(body["id"], format!("{id}-{}", event["id"]));
        assert_eq!(body["buildId"], id.as_str());
        assert_eq!(body["type"], event["type"]);
        assert_eq!(body["data"], event["data"]);
        assert_eq!(body["userId"], "u_hooks");
        assert_eq!(body["projectId"], project.as_str());
        let sent = chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).unwrap();
        let recorded = chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap()).unwrap();
        assert_eq!(sent, recorded);
    }

    // The type filter and the user filter.
    let deployed = deploys.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(deploys.got().len(), 1);
    assert_eq!(deployed[0].json()["type"], "deploy_completed");
    assert!(verify(&deploys_secret, &deployed[0].signature, &deployed[0].body));
    assert!(others.got().is_empty(), "another user's builds are not delivered");

    // Every attempt is recorded.
    let list = settled(&app, &app.api, &all_id, Duration::from_secs(10)).await;
    assert_eq!(list.len(), events.len());
    for d in &list {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["attemptLog"][0]["statusCode"], 200, "{d}");
        assert_eq!(d["lastError"], Value::Null);
    }

    // Deleting.
    let res = app
        .signed("DELETE", &format!("/v1/webhooks/{others_id}"), b"")
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .signed("DELETE", &format!("/v1/webhooks/{others_id}"), b"")
        .await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        app.get_json("/v1/webhooks").await["webhooks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// A failed build's webhook carries what its `GET` says: the step, the reason and the
/// diagnostics, signed like every delivery.
#[tokio::test]
async fn a_failed_builds_webhook_carries_its_diagnostics() {
    let app = spawn_app(Options::default()).await;
    let failures = Receiver::start(200).await;
    let (_, secret) = subscribe(
        &app,
        json!({ "url": failures.url, "eventTypes": ["build_failed"], "userId": "u_hookdiag" }),
    )
    .await;
    let script = "node -e \"throw new TypeError('boom in the build script')\"";
    let files = json!([
        { "path": "package.json", "content": json!({ "scripts": { "build": script } }).to_string() },
    ]);
    let id = app
        .submit(&crate::helpers::build_body("u_hookdiag", &unique("diag"), files))
        .await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "failed", "{build}");
    let got = failures.wait_for(1, Duration::from_secs(30)).await;
    assert!(verify(&secret, &got[0].signature, &got[0].body));
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], "build_failed", "{body}");
    assert_eq!(body["data"]["step"], "build", "{body}");
    assert_eq!(body["data"]["diagnostics"], build["diagnostics"], "{body}");
    assert_eq!(
        body["data"]["diagnosticsTotal"], build["diagnosticsTotal"],
        "{body}"
    );
    let first = &body["data"]["diagnostics"][0];
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("boom in the build script"),
        "{first}"
    );
}

#[tokio::test]
async fn bad_subscriptions_are_refused_with_what_is_wrong() {
    let app = spawn_app(Options::without_builders()).await;
    for (body, status, says) in [
        (json!({}), 422, "url is required"),
        (
            json!({ "url": "ftp://example.com/x" }),
            422,
            "http:// or https://",
        ),
        (json!({ "url": "not a url" }), 422, "not a URL"),
        (
            json!({ "url": "http://example.com", "eventTypes": ["build_exploded"] }),
            422,
            "deploy_completed",
        ),
        (
            json!({ "url": "http://example.com", "userId": "bad user" }),
            422,
            "userId",
        ),
        (
            json!({ "url": "http://example.com", "colour": "red" }),
            400,
            "unknown field",
        ),
        (
            json!({ "url": format!("http://example.com/{}", "a".repeat(3000)) }),
            422,
            "longer than",
        ),
    ] {
        let (got, answer) = app.send_json("POST", "/v1/webhooks", &body).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(says),
            "{body}: {answer}"
        );
    }
    for (path, status) in [
        ("/v1/webhooks/nope".to_owned(), 400),
        (format!("/v1/webhooks/wh_{}", "0".repeat(26)), 404),
        (format!("/v1/webhooks/wh_{}/deliveries", "0".repeat(26)), 404),
    ] {
        assert_eq!(app.get(&path).await.status(), status, "{path}");
    }
    let (id, _) = subscribe(&app, json!({ "url": "http://127.0.0.1:9/" })).await;
    let res = app
        .signed(
            "POST",
            &format!("/v1/webhooks/{id}/deliveries/dl_{}/redeliver", "0".repeat(26)),
            b"",
        )
        .await;
    assert_eq!(res.status(), 404);
    let res = app
        .signed("POST", &format!("/v1/webhooks/{id}/deliveries/12/redeliver"), b"")
        .await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn failed_deliveries_retry_on_schedule_then_fail_and_can_be_redelivered() {
    let unit_ms = 100;
    let app = spawn_app(Options {
        builders: 0,
        env: vec![
            ("KILN_WEBHOOK_RETRY_UNIT_MS", unit_ms.to_string()),
            ("KILN_WEBHOOK_POLL_MS", "20".into()),
        ],
        ..Options::default()
    })
    .await;
    let receiver = Receiver::start(500).await;
    let (hook, secret) = subscribe(
        &app,
        json!({ "url": receiver.url, "eventTypes": ["build_queued"] }),
    )
    .await;
    app.submit(&build_body("u_retry", &unique("r"), static_site()))
        .await;

    let list = settled(&app, &app.api, &hook, Duration::from_secs(30)).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let d = &list[0];
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["attempts"], 6);
    assert_eq!(d["lastStatusCode"], 500);
    assert!(d["lastError"].as_str().unwrap().contains("500"), "{d}");
    assert_eq!(d["nextAttemptAt"], Value::Null);
    let log = d["attemptLog"].as_array().unwrap();
    assert_eq!(
        log.iter().map(|a| a["n"].as_i64().unwrap()).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert!(log.iter().all(|a| a["statusCode"] == 500));

    // Six attempts, 1, 2, 4, 8 and 16 units apart, the same event each time.
    let got = receiver.got();
    assert_eq!(got.len(), 6);
    assert_eq!(
        got.iter().map(|r| r.attempt.as_str()).collect::<Vec<_>>(),
        ["1", "2", "3", "4", "5", "6"]
    );
    for (i, pair) in got.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let due = Duration::from_millis(unit_ms * (1 << i));
        assert!(
            gap + Duration::from_millis(5) >= due,
            "retry {} came after {gap:?}, due after {due:?}",
            i + 1
        );
        assert!(
            gap < due + Duration::from_secs(1),
            "retry {} came after {gap:?}",
            i + 1
        );
        assert_eq!(pair[0].json()["id"], pair[1].json()["id"]);
        assert!(verify(&secret, &pair[1].signature, &pair[1].body));
    }

    // Redelivered once the receiver is back: a new delivery of the same event.
    receiver.set_default(204);
    let failed_id = d["id"].as_str().unwrap();
    let (status, again) = app
        .send_json(
            "POST",
            &format!("/v1/webhooks/{hook}/deliveries/{failed_id}/redeliver"),
            &Value::Null,
        )
        .await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["redeliveryOf"], failed_id);
    assert_ne!(again["id"], failed_id);
    let list = settled(&app, &app.api, &hook, Duration::from_secs(10)).await;
    let redelivered = list.iter().find(|x| x["id"] == again["id"]).unwrap();
    assert_eq!(redelivered["status"], "delivered", "{redelivered}");
    assert_eq!(redelivered["attemptLog"][0]["statusCode"], 204);
    let got = receiver.got();
    assert_eq!(got.len(), 7);
    assert_eq!(
        got[6].json()["id"],
        got[0].json()["id"],
        "receivers deduplicate by id"
    );
}

#[tokio::test]
async fn a_receiver_that_hangs_delays_neither_builds_nor_other_receivers() {
    let app = spawn_app(Options {
        env: vec![
            ("KILN_WEBHOOK_TIMEOUT_SECS", "60".into()),
            ("KILN_WEBHOOK_POLL_MS", "50".into()),
        ],
        ..Options::default()
    })
    .await;
    let hangs = Receiver::start(0).await;
    let answers = Receiver::start(200).await;
    let (hanging_hook, _) = subscribe(&app, json!({ "url": hangs.url })).await;
    subscribe(&app, json!({ "url": answers.url })).await;

    // Three builds: 6 or so events each to both receivers.
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            app.submit(&build_body("u_hang", &unique(&format!("h{i}")), static_site()))
                .await,
        );
    }
    let mut events = 0;
    for id in &ids {
        let build = app.wait(id).await;
        assert_eq!(build["status"], "deployed", "{build}");
        events += app.final_events(id).await.len();
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "the builds took {took:?} beside a hanging receiver"
    );

    let got = answers.wait_for(events, Duration::from_secs(5)).await;
    let last = got.iter().map(|r| r.at).max().unwrap();
    assert!(
        last - started < Duration::from_secs(35),
        "the answering receiver got every event promptly"
    );
    // The hanging receiver holds at most a quarter of each process's 16 slots (the API's and
    // the builder's): at most 8 requests, all still waiting; its other deliveries wait their turn.
    let hanging = hangs.got().len();
    assert!(
        (1..=8).contains(&hanging),
        "{hanging} requests to the hanging receiver"
    );
    let pending = deliveries(&app, &app.api, &hanging_hook).await;
    assert_eq!(pending.len(), events);
    assert!(
        pending
            .iter()
            .all(|d| d["status"] == "pending" && d["attempts"] == 0),
        "{pending:?}"
    );
}

#[tokio::test]
async fn pending_deliveries_survive_an_api_restart() {
    let app = spawn_app(Options {
        builders: 0,
        env: vec![
            ("KILN_WEBHOOK_RETRY_UNIT_MS", "1500".into()),
            ("KILN_WEBHOOK_POLL_MS", "20".into()),
        ],
        ..Options::default()
    })
    .await;
    let receiver = Receiver::start(200).await;
    receiver.answers.lock().unwrap().push_back(503);
    let (hook, _) = subscribe(
        &app,
        json!({ "url": receiver.url, "eventTypes": ["build_queued"] }),
    )
    .await;
    app.submit(&build_body("u_restart", &unique("r"), static_site()))
        .await;

    // The first attempt fails; the retry is due 1.5 s later. The API stops before that.
    receiver.wait_for(1, Duration::from_secs(10)).await;
    let started = Instant::now();
    loop {
        let list = deliveries(&app, &app.api, &hook).await;
        if list[0]["attempts"] == 1 {
            assert_eq!(list[0]["status"], "pending", "{list:?}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{list:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.api_stop.cancel();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(receiver.got().len(), 1, "nothing delivers while no process runs");

    // A new API instance (a restart) finds the pending delivery and makes it.
    let restarted = app.another_api().await;
    receiver.wait_for(2, Duration::from_secs(10)).await;
    let list = settled(&app, &restarted, &hook, Duration::from_secs(10)).await;
    assert_eq!(list[0]["status"], "delivered", "{list:?}");
    let codes: Vec<i64> = list[0]["attemptLog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [503, 200]);
}
