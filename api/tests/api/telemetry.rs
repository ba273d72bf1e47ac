//! Telemetry for operators against the running API: per-route request counts and latencies
//! under the matched pattern (never the raw path), `X-Request-Id` on every answer of both
//! listeners and in the request's span, and `kiln_build_info` with the process metrics on the API
//! and on a builder.

use std::sync::{Arc, Mutex, OnceLock};

use kiln_shared::metrics::sample;
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::helpers::{build_body, spawn_app, unique, Options, TestApp};

async fn api_metrics(app: &TestApp) -> String {
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

fn count(text: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, "kiln_http_requests_total", labels).unwrap_or(0.0)
}

/// Every distinct `route` label of the request counter.
fn routes(text: &str) -> Vec<String> {
    let mut routes: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("kiln_http_requests_total{"))
        .filter_map(|l| {
            let start = l.find("route=\"")? + "route=\"".len();
            let len = l[start..].find('"')?;
            Some(l[start..start + len].to_owned())
        })
        .collect();
    routes.sort();
    routes.dedup();
    routes
}

#[tokio::test]
async fn requests_are_counted_under_their_route_pattern_and_status() {
    let app = spawn_app(Options::without_builders()).await;
    let files = json!([{ "path": "index.html", "content": "<h1>t</h1>" }]);
    let id = app.submit(&build_body("u_telemetry", &unique("p"), files)).await;
    assert_eq!(app.get(&format!("/v1/builds/{id}")).await.status(), 200);
    assert_eq!(app.get(&format!("/v1/builds/{id}")).await.status(), 200);
    let missing = ulid::Ulid::new().to_string();
    assert_eq!(app.get(&format!("/v1/builds/{missing}")).await.status(), 404);
    let unsigned = app
        .client
        .get(format!("{}/v1/builds/{id}", app.api))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);

    let text = api_metrics(&app).await;
    let route = ("route", "/v1/builds/{id}");
    assert_eq!(
        count(&text, &[route, ("method", "GET"), ("status", "200")]),
        2.0,
        "{text}"
    );
    assert_eq!(count(&text, &[route, ("method", "GET"), ("status", "404")]), 1.0);
    assert_eq!(
        count(&text, &[route, ("method", "GET"), ("status", "401")]),
        1.0,
        "a refusal by the authentication middleware is counted under the route too"
    );
    assert_eq!(
        count(
            &text,
            &[("route", "/v1/builds"), ("method", "POST"), ("status", "202")]
        ),
        1.0
    );
    let latency = "kiln_http_request_duration_seconds_count";
    assert_eq!(
        sample(&text, latency, &[route, ("method", "GET")]),
        Some(4.0),
        "{text}"
    );
    assert!(
        !text.contains(&id) && !text.contains(&missing),
        "a raw path leaked into a label:\n{text}"
    );
}

#[tokio::test]
async fn unmatched_paths_share_one_label() {
    let app = spawn_app(Options::without_builders()).await;
    let before = routes(&api_metrics(&app).await);
    for i in 0..3 {
        let path = format!("/no/such/{}", unique(&format!("r{i}")));
        assert_eq!(app.get(&path).await.status(), 404);
    }
    let under_v1 = format!("/v1/{}", unique("nothing"));
    assert_eq!(app.get(&under_v1).await.status(), 404);
    let bad_method = app
        .client
        .request(
            reqwest::Method::from_bytes(b"BREW").unwrap(),
            format!("{}/{}", app.api, unique("pot")),
        )
        .send()
        .await
        .unwrap();
    assert!(bad_method.status().is_client_error());

    let text = api_metrics(&app).await;
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    assert_eq!(count(&text, &unmatched), 4.0, "{text}");
    assert_eq!(
        count(
            &text,
            &[
                ("route", "unmatched"),
                ("method", "other"),
                ("status", bad_method.status().as_str())
            ]
        ),
        1.0,
        "a made-up method is one `other` label"
    );
    let after = routes(&text);
    let new: Vec<&String> = after.iter().filter(|r| !before.contains(r)).collect();
    for route in &new {
        assert!(
            ["unmatched", "/metrics"].contains(&route.as_str()),
            "404s added the route label {route}: {after:?}"
        );
    }
    assert!(!text.contains("/no/such"), "{text}");
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let app = spawn_app(Options::without_builders()).await;
    let id_of = |res: &reqwest::Response| -> String {
        res.headers()
            .get("x-request-id")
            .unwrap_or_else(|| panic!("no X-Request-Id on {} {}", res.status(), res.url()))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let send = |path: &str, id: Option<reqwest::header::HeaderValue>| {
        let mut req = app.client.get(format!("{}{path}", app.api));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };

    // A sane id is echoed, on a success and on refusals alike.
    for path in ["/healthz", "/v1/builds", "/no/such/route"] {
        let res = send(path, Some("req-42.abc_DEF:1/2".parse().unwrap()))
            .await
            .unwrap();
        assert_eq!(id_of(&res), "req-42.abc_DEF:1/2", "{path}: {}", res.status());
    }
    let longest = "x".repeat(128);
    let res = send("/healthz", Some(longest.parse().unwrap())).await.unwrap();
    assert_eq!(id_of(&res), longest);

    // Absent or hostile: a new ULID each time.
    let generated = |res: &reqwest::Response| {
        let id = id_of(res);
        assert!(id.parse::<ulid::Ulid>().is_ok(), "not a generated ULID: {id:?}");
        id
    };
    let a = generated(&send("/healthz", None).await.unwrap());
    let b = generated(&send("/no/such/route", None).await.unwrap());
    assert_ne!(a, b);
    let hostile = [
        "y".repeat(129).into_bytes(),
        b"tab\tinside".to_vec(),
        b"with space".to_vec(),
        b"caf\xe9".to_vec(),
    ];
    for bytes in hostile {
        let value = reqwest::header::HeaderValue::from_bytes(&bytes).unwrap();
        let res = send("/healthz", Some(value)).await.unwrap();
        assert_eq!(res.status(), 200);
        generated(&res);
    }

    // The preview listener too, whatever it answers.
    let res = app
        .client
        .get(format!("http://127.0.0.1:{}/index.html", app.preview_port))
        .header("Host", format!("nothing-here.localhost:{}", app.preview_port))
        .header("x-request-id", "preview-1")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&res), "preview-1", "{}", res.status());
    let res = app.preview("nothing-here", "/").await;
    generated(&res);
    let status = res.status().as_u16().to_string();

    let text = api_metrics(&app).await;
    assert_eq!(
        count(
            &text,
            &[("route", "preview"), ("method", "GET"), ("status", &status)]
        ),
        2.0,
        "the preview listener's requests are one `preview` route:\n{text}"
    );
}

#[tokio::test]
async fn build_info_and_process_metrics_on_the_api_and_a_builder() {
    let app = spawn_app(Options::without_builders()).await;
    let version = env!("CARGO_PKG_VERSION");
    let text = api_metrics(&app).await;
    check_process(&text, "api", version);

    let _builder = app.start_builder("telemetry-one", |_| {});
    let text = app.builder_metrics("telemetry-one").await;
    check_process(&text, "builder", version);
}

fn check_process(text: &str, role: &str, version: &str) {
    assert_eq!(
        sample(text, "kiln_build_info", &[("version", version), ("role", role)]),
        Some(1.0),
        "{text}"
    );
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        let value = sample(text, name, &[("role", role)]);
        assert!(value.is_some_and(|v| v >= 0.0), "{role}: no {name} in:\n{text}");
    }
    assert!(sample(text, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(sample(text, "process_open_fds", &[]).unwrap() >= 3.0);
}

/// The `request_id` of the "HTTP request" spans of [`PROBE`] requests, with the span's
/// `http.target` (a layer of a process-wide subscriber: actix' workers run on threads of their
/// own).
fn request_spans() -> &'static Mutex<Vec<(String, String)>> {
    static SPANS: OnceLock<Spans> = OnceLock::new();
    SPANS.get_or_init(|| {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let layer = SpanRecorder(spans.clone());
        tracing_subscriber::registry()
            .with(layer)
            .try_init()
            .expect("no other test installs a subscriber");
        spans
    })
}

/// In the paths of the requests whose spans are kept.
const PROBE: &str = "telemetry-span-probe";

/// (request id, target) of each kept request span.
type Spans = Arc<Mutex<Vec<(String, String)>>>;

struct SpanRecorder(Spans);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanRecorder {
    /// Only the request spans are enabled: the other tests of this process log nothing more.
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if metadata.is_span() && metadata.name() == "HTTP request" {
            tracing::subscriber::Interest::always()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() != "HTTP request" {
            return;
        }
        #[derive(Default)]
        struct Fields(Option<String>, Option<String>);
        impl Fields {
            fn filter(self, keep: impl Fn(&str) -> bool) -> Self {
                match &self.1 {
                    Some(target) if keep(target) => self,
                    _ => Self::default(),
                }
            }
        }
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                match field.name() {
                    "request_id" => self.0 = Some(format!("{value:?}")),
                    "http.target" => self.1 = Some(format!("{value:?}")),
                    _ => {}
                }
            }
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        // Only this test's requests are kept.
        if let Fields(Some(id), Some(target)) = fields.filter(|t| t.contains(PROBE)) {
            self.0.lock().unwrap().push((id, target));
        }
    }
}

#[tokio::test]
async fn the_request_id_is_recorded_in_the_request_span() {
    let spans = request_spans();
    let app = spawn_app(Options::without_builders()).await;
    let given = unique(PROBE);
    let path = format!("/healthz?probe={given}");
    let res = app
        .client
        .get(format!("{}{path}", app.api))
        .header("x-request-id", &given)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], given.as_str());
    let fresh_path = format!("/no/such/{}", unique(PROBE));
    let res = app
        .client
        .get(format!("{}{fresh_path}", app.api))
        .send()
        .await
        .unwrap();
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_owned();

    let recorded = spans.lock().unwrap().clone();
    let span_of = |target: &str| {
        recorded
            .iter()
            .find(|(_, t)| t == target)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("no span for {target} in {recorded:?}"))
    };
    assert_eq!(span_of(&path), given);
    assert_eq!(span_of(&fresh_path), generated);
}
