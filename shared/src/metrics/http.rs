//! Per-route HTTP metrics of an actix listener: `kiln_http_requests_total{route,method,status}`
//! and `kiln_http_request_duration_seconds{route,method}`. The caller gives the route as the
//! matched pattern (`/v1/builds/{id}`) or one of the fixed labels below, never the raw path, and
//! the method is folded to the standard ones: every label stays bounded whatever clients send.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// The `route` label of a request that matched no route of the API (its 404).
pub const UNMATCHED: &str = "unmatched";

/// The `route` label of every request to the preview listener (whose paths are the files of
/// the sites it serves: one label for all of them).
pub const PREVIEW: &str = "preview";

/// Seconds to the response head: the API's ordinary answers take a few milliseconds; admission,
/// exports and previews from the artifact store up to seconds; anything past the last bucket is
/// a stall.
pub const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The HTTP families of one process's registry.
#[derive(Debug)]
pub(super) struct HttpFamilies {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl HttpFamilies {
    pub(super) fn register(registry: &Registry) -> Self {
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by matched route pattern, method and status.",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from a request's arrival to its response head (a stream's body is not counted), by matched route pattern and method.",
            )
            .buckets(HTTP_BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("metric names are unique");
        registry
            .register(Box::new(duration.clone()))
            .expect("metric names are unique");
        Self { requests, duration }
    }

    pub(super) fn observe(&self, route: &str, method: &str, status: u16, took: Duration) {
        let method = method_label(method);
        let status = status.to_string();
        self.requests.with_label_values(&[route, method, &status]).inc();
        self.duration
            .with_label_values(&[route, method])
            .observe(took.as_secs_f64());
    }
}

/// The standard methods as they are; anything else (an extension method a client made up) is
/// `other`.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}
