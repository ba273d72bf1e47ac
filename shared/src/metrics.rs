//! Prometheus metrics. Each process (the API, every builder daemon) has its own registry of
//! counters and histograms of what *it* did; Prometheus scrapes every process and sums across
//! the fleet. What belongs to the whole farm (builds queued and running, the oldest waiting
//! build, live builders) is read from Postgres and Redis when the API is scraped, so it is the
//! same whichever API instance answers.
//!
//! Every name starts with `kiln_` (but the standard `process_*` families: CPU, memory, open
//! files); `deploy/prometheus/kiln-alerts.yml` holds the alert rules written against them.
//! [`http`] holds the per-route families of the HTTP listeners.

pub mod http;

use std::sync::Arc;
use std::time::Duration;

use prometheus::process_collector::ProcessCollector;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A build's phases, as the `phase` label of [`Metrics::phase_seconds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// From submission to a builder starting it.
    QueueWait,
    Generate,
    Install,
    /// The checks a build asked for (typecheck, lint).
    Check,
    Build,
    Upload,
    /// From a builder starting it to its outcome being recorded.
    Total,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::QueueWait => "queue_wait",
            Phase::Generate => "generate",
            Phase::Install => "install",
            Phase::Check => "check",
            Phase::Build => "build",
            Phase::Upload => "upload",
            Phase::Total => "total",
        }
    }
}

/// What became of one webhook attempt (the `result` label of webhook deliveries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryResult {
    Delivered,
    /// Failed; another attempt is scheduled.
    Retrying,
    /// Failed for the last time.
    Failed,
}

/// Farm-wide gauges, read by the API when it is scraped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FarmGauges {
    pub queued: i64,
    pub running: i64,
    /// Age of the oldest queued build, 0 when none is queued.
    pub oldest_queued_secs: f64,
    /// Entries in the build stream (waiting plus being built).
    pub stream_length: u64,
    pub live_builders: u64,
    pub fleet_slots: u64,
}

/// One process's metrics. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Metrics(Arc<Families>);

#[derive(Debug)]
struct Families {
    registry: Registry,
    /// The standard `process_*` families, without the `kiln_` prefix (dashboards expect them by
    /// their usual names).
    process: Registry,
    http: http::HttpFamilies,
    builds_finished: IntCounterVec,
    phase_seconds: HistogramVec,
    reclaims: IntCounter,
    retries: IntCounterVec,
    handed_back: IntCounter,
    affinity: IntCounterVec,
    cancellations: IntCounter,
    install_starts: IntCounterVec,
    dep_cache_lookups: IntCounterVec,
    dep_cache_bytes: IntGauge,
    packages: IntCounterVec,
    package_bytes: IntCounter,
    heartbeats: IntCounterVec,
    webhook_deliveries: IntCounterVec,
    running_builds: IntGauge,
    slots: IntGauge,
    builds_current: IntGaugeVec,
    oldest_queued_seconds: Gauge,
    stream_length: IntGauge,
    live_builders: IntGauge,
    fleet_slots: IntGauge,
    farm_readable: IntGauge,
}

/// Seconds: from a fast no-op step to the 300 s default build limit and beyond.
const PHASE_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

impl Metrics {
    /// A registry of every family, labelled with the process's role (`api` or `builder`).
    pub fn new(role: &str) -> Self {
        let registry = Registry::new_custom(
            Some("kiln".into()),
            Some([("role".to_owned(), role.to_owned())].into()),
        )
        .expect("a valid prefix and label");
        let process = Registry::new_custom(None, Some([("role".to_owned(), role.to_owned())].into()))
            .expect("a valid label");
        process
            .register(Box::new(ProcessCollector::for_self()))
            .expect("one process collector");
        let r = Registrar(&registry);
        let build_info = r.gauge_vec(
            "build_info",
            "Always 1; the version of the running binary (and its role) in the labels.",
            &["version"],
        );
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let families = Families {
            http: http::HttpFamilies::register(&registry),
            builds_finished: r.counter_vec(
                "builds_finished_total",
                "Builds whose outcome this process recorded, by final status.",
                &["status"],
            ),
            phase_seconds: r.histogram_vec(
                "build_phase_seconds",
                "Duration of a build's phases (queue_wait, generate, install, build, upload, total).",
                &["phase"],
            ),
            reclaims: r.counter(
                "reclaims_total",
                "Builds this daemon took over after their builder was lost (lease expired).",
            ),
            retries: r.counter_vec(
                "retries_total",
                "Attempts retried after an infrastructure error, by the step that hit it.",
                &["step"],
            ),
            handed_back: r.counter(
                "handed_back_total",
                "Builds handed back to the queue at the drain deadline.",
            ),
            affinity: r.counter_vec(
                "affinity_total",
                "Builds that prefer a builder (the one that built their project last), by where they went: preferred (read by it), handed (handed to it and run there), handed_off (this daemon handed it on), busy, dead, bound (run here instead, and why).",
                &["outcome"],
            ),
            cancellations: r.counter(
                "cancellations_total",
                "Builds cancelled (API: cancel requests that cancelled; builder: running builds stopped).",
            ),
            install_starts: r.counter_vec(
                "install_starts_total",
                "Install steps started, by sandbox: warm (started ahead of the build) or cold.",
                &["sandbox"],
            ),
            dep_cache_lookups: r.counter_vec(
                "dep_cache_lookups_total",
                "Warm dependency tree lookups of builds, by result (hit: the install was skipped; miss).",
                &["result"],
            ),
            dep_cache_bytes: r.gauge(
                "dep_cache_bytes",
                "Bytes of the warm dependency trees this daemon keeps (KILN_DEP_CACHE_MB bounds them).",
            ),
            packages: r.counter_vec(
                "package_cache_requests_total",
                "Package tarballs asked of the fleet's package cache, by result: hit (from the artifact store), miss (fetched from the registry), refused (a cached object that failed its integrity check), failed (neither).",
                &["result"],
            ),
            package_bytes: r.counter(
                "package_cache_served_bytes_total",
                "Bytes of package tarballs the package cache served to installs.",
            ),
            heartbeats: r.counter_vec(
                "heartbeats_total",
                "Builder heartbeats sent, by result (ok, error).",
                &["result"],
            ),
            webhook_deliveries: r.counter_vec(
                "webhook_deliveries_total",
                "Webhook delivery attempts, by result (delivered, retrying, failed).",
                &["result"],
            ),
            running_builds: r.gauge("running_builds", "Builds this daemon runs now."),
            slots: r.gauge("slots", "Builds this daemon may run at once (KILN_BUILDER_CONCURRENCY)."),
            builds_current: r.gauge_vec(
                "builds",
                "Builds of the whole farm that are queued or running now (from Postgres).",
                &["status"],
            ),
            oldest_queued_seconds: r.float_gauge(
                "oldest_queued_seconds",
                "Age of the farm's oldest queued build (0 when none waits).",
            ),
            stream_length: r.gauge(
                "stream_length",
                "Entries in the build stream (waiting plus being built).",
            ),
            live_builders: r.gauge("live_builders", "Builders with a live heartbeat."),
            fleet_slots: r.gauge("fleet_slots", "Build slots of the live builders."),
            farm_readable: r.gauge(
                "farm_readable",
                "1 when this scrape read the farm-wide gauges; 0 when Postgres or Redis did not answer (the gauges keep their last values).",
            ),
            registry,
            process,
        };
        Self(Arc::new(families))
    }

    pub fn build_finished(&self, status: &str) {
        self.0.builds_finished.with_label_values(&[status]).inc();
    }

    pub fn phase(&self, phase: Phase, took: Duration) {
        self.0
            .phase_seconds
            .with_label_values(&[phase.label()])
            .observe(took.as_secs_f64());
    }

    /// Records the phases a build reported in milliseconds (absent ones are skipped).
    pub fn phases_ms(&self, phases: &[(Phase, Option<i64>)]) {
        for (phase, ms) in phases {
            if let Some(ms) = ms.filter(|ms| *ms >= 0) {
                self.phase(*phase, Duration::from_millis(ms as u64));
            }
        }
    }

    pub fn reclaimed(&self) {
        self.0.reclaims.inc();
    }

    pub fn retried(&self, step: &str) {
        self.0.retries.with_label_values(&[step]).inc();
    }

    pub fn handed_back(&self) {
        self.0.handed_back.inc();
    }

    /// A build that prefers a builder went somewhere (`outcome`: see `affinity_total`).
    pub fn affinity(&self, outcome: &str) {
        self.0.affinity.with_label_values(&[outcome]).inc();
    }

    /// An install step started, in a `warm` or `cold` sandbox.
    pub fn install_started(&self, sandbox: &str) {
        self.0.install_starts.with_label_values(&[sandbox]).inc();
    }

    /// A build looked for its project's warm dependency tree.
    pub fn dep_cache_lookup(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.0.dep_cache_lookups.with_label_values(&[result]).inc();
    }

    /// The bytes of the warm dependency trees kept.
    pub fn set_dep_cache_bytes(&self, bytes: u64) {
        self.0.dep_cache_bytes.set(bytes as i64);
    }

    /// A package tarball asked of the package cache: `hit`, `miss`, `refused` or `failed`;
    /// `bytes` served.
    pub fn package(&self, result: &str, bytes: u64) {
        self.0.packages.with_label_values(&[result]).inc();
        self.0.package_bytes.inc_by(bytes);
    }

    pub fn cancelled(&self) {
        self.0.cancellations.inc();
    }

    pub fn heartbeat(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.0.heartbeats.with_label_values(&[result]).inc();
    }

    pub fn webhook_delivery(&self, result: DeliveryResult) {
        let label = match result {
            DeliveryResult::Delivered => "delivered",
            DeliveryResult::Retrying => "retrying",
            DeliveryResult::Failed => "failed",
        };
        self.0.webhook_deliveries.with_label_values(&[label]).inc();
    }

    /// This daemon's running builds and slots.
    pub fn set_running(&self, running: usize, slots: usize) {
        self.0.running_builds.set(running as i64);
        self.0.slots.set(slots as i64);
    }

    pub fn set_farm(&self, farm: &FarmGauges) {
        let f = &self.0;
        f.builds_current.with_label_values(&["queued"]).set(farm.queued);
        f.builds_current.with_label_values(&["running"]).set(farm.running);
        f.oldest_queued_seconds.set(farm.oldest_queued_secs);
        f.stream_length.set(farm.stream_length as i64);
        f.live_builders.set(farm.live_builders as i64);
        f.fleet_slots.set(farm.fleet_slots as i64);
        f.farm_readable.set(1);
    }

    pub fn farm_unreadable(&self) {
        self.0.farm_readable.set(0);
    }

    /// One answered HTTP request: `route` is the matched pattern or one of [`http::UNMATCHED`],
    /// [`http::PREVIEW`]; `took` runs to the response head.
    pub fn http_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.0.http.observe(route, method, status, took);
    }

    /// The text exposition of every family.
    pub fn encode(&self) -> String {
        let mut families = self.0.registry.gather();
        families.extend(self.0.process.gather());
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("the text encoder writes to memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// Creates families and registers them (names are static: a clash is a programming error).
struct Registrar<'a>(&'a Registry);

impl Registrar<'_> {
    fn add<C: prometheus::core::Collector + Clone + 'static>(&self, c: C) -> C {
        self.0
            .register(Box::new(c.clone()))
            .expect("metric names are unique");
        c
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::with_opts(Opts::new(name, help)).expect("valid metric"))
    }

    fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::with_opts(Opts::new(name, help)).expect("valid metric"))
    }

    fn float_gauge(&self, name: &str, help: &str) -> Gauge {
        self.add(Gauge::with_opts(Opts::new(name, help)).expect("valid metric"))
    }

    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    fn histogram_vec(&self, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(PHASE_BUCKETS.to_vec());
        self.add(HistogramVec::new(opts, labels).expect("valid metric"))
    }
}

/// The value of the sample `name` whose labels include every pair of `labels` (in any order),
/// read from a text exposition; `None` when there is none. For tests and tools that read
/// `/metrics`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        let has = |(k, v): &(&str, &str)| {
            series_labels
                .split(',')
                .any(|pair| pair == format!("{k}=\"{v}\""))
        };
        (series_name == name && labels.iter().all(has)).then(|| value.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_with_its_labels() {
        let m = Metrics::new("builder");
        m.build_finished("deployed");
        m.build_finished("failed");
        m.build_finished("deployed");
        m.phase(Phase::Install, Duration::from_millis(1500));
        m.phases_ms(&[(Phase::Build, Some(20)), (Phase::Generate, None)]);
        m.webhook_delivery(DeliveryResult::Retrying);
        m.set_running(1, 2);
        let text = m.encode();
        let value = |name: &str, labels: &[(&str, &str)]| sample(&text, name, labels);
        let finished = "kiln_builds_finished_total";
        assert_eq!(
            value(finished, &[("status", "deployed"), ("role", "builder")]),
            Some(2.0),
            "{text}"
        );
        assert_eq!(value(finished, &[("status", "failed")]), Some(1.0));
        assert_eq!(value(finished, &[("status", "cancelled")]), None);
        let bucket = "kiln_build_phase_seconds_bucket";
        assert_eq!(value(bucket, &[("phase", "install"), ("le", "2.5")]), Some(1.0));
        assert_eq!(value(bucket, &[("phase", "install"), ("le", "1")]), Some(0.0));
        assert_eq!(
            value("kiln_build_phase_seconds_count", &[("phase", "build")]),
            Some(1.0)
        );
        assert!(
            !text.contains(r#"phase="generate""#),
            "absent phases are not observed"
        );
        assert_eq!(
            value("kiln_webhook_deliveries_total", &[("result", "retrying")]),
            Some(1.0)
        );
        assert_eq!(value("kiln_running_builds", &[]), Some(1.0));
        assert_eq!(value("kiln_slots", &[("role", "builder")]), Some(2.0));
        assert!(text.contains("# TYPE kiln_build_phase_seconds histogram"));
    }

    #[test]
    fn build_info_process_and_http_families_are_exported() {
        let m = Metrics::new("api");
        m.http_request("/v1/builds/{id}", "GET", 200, Duration::from_millis(3));
        m.http_request("/v1/builds/{id}", "GET", 404, Duration::from_millis(1));
        m.http_request(http::UNMATCHED, "BREW", 404, Duration::from_millis(1));
        let text = m.encode();
        let value = |name: &str, labels: &[(&str, &str)]| sample(&text, name, labels);
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            value("kiln_build_info", &[("version", version), ("role", "api")]),
            Some(1.0),
            "{text}"
        );
        let requests = "kiln_http_requests_total";
        let route = ("route", "/v1/builds/{id}");
        assert_eq!(
            value(requests, &[route, ("method", "GET"), ("status", "200")]),
            Some(1.0)
        );
        assert_eq!(value(requests, &[route, ("status", "404")]), Some(1.0));
        assert_eq!(
            value(requests, &[("route", "unmatched"), ("method", "other")]),
            Some(1.0),
            "an unknown method is folded into `other`"
        );
        let bucket = "kiln_http_request_duration_seconds_bucket";
        assert_eq!(value(bucket, &[route, ("le", "0.0025")]), Some(1.0));
        assert_eq!(value(bucket, &[route, ("le", "0.005")]), Some(2.0));
        // Linux's /proc: the standard names, with the role.
        assert!(
            value("process_resident_memory_bytes", &[("role", "api")]).unwrap_or(0.0) > 0.0,
            "{text}"
        );
        assert!(value("process_open_fds", &[]).unwrap_or(0.0) > 0.0);
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
    }

    #[test]
    fn two_registries_count_apart() {
        let (a, b) = (Metrics::new("api"), Metrics::new("api"));
        a.cancelled();
        assert_eq!(sample(&a.encode(), "kiln_cancellations_total", &[]), Some(1.0));
        assert_eq!(sample(&b.encode(), "kiln_cancellations_total", &[]), Some(0.0));
    }

    #[test]
    fn the_alert_rules_name_only_metrics_that_exist() {
        let rules = include_str!("../../deploy/prometheus/kiln-alerts.yml");
        let m = Metrics::new("api");
        // Touch every labelled family, so that each shows in the exposition.
        m.build_finished("failed");
        m.phase(Phase::Total, Duration::ZERO);
        m.retried("upload");
        m.heartbeat(true);
        m.webhook_delivery(DeliveryResult::Failed);
        m.set_farm(&FarmGauges::default());
        m.http_request(http::UNMATCHED, "GET", 500, Duration::ZERO);
        let text = m.encode();
        let mut names: Vec<&str> = rules
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("kiln_"))
            // kiln-ops maintain's gauges (a textfile of its own): checked in ops/maintain.
            .filter(|w| !w.starts_with("kiln_maintenance_"))
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(names.len() >= 6, "{names:?}");
        for name in names {
            // A histogram's series are named after its family.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|family| text.contains(&format!("# TYPE {family} histogram")))
                .unwrap_or(name);
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "deploy/prometheus/kiln-alerts.yml uses {name}, which Kiln does not export"
            );
        }
    }
}
