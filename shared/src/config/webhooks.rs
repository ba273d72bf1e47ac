//! How webhook deliveries run.

use std::time::Duration;

use super::definition::{section, Fallback, Kind, Variable, API_BUILDER};

section! {
    title: "Webhooks",
    intro: "How webhook deliveries run (in every API and builder process).",
    WEBHOOK_DELIVERY = Variable::new(
        "KILN_WEBHOOK_DELIVERY",
        Kind::Switch,
        Fallback::Value("on"),
        API_BUILDER,
        "whether this process delivers webhooks",
    );
    WEBHOOK_RETRY_UNIT_MS = Variable::new(
        "KILN_WEBHOOK_RETRY_UNIT_MS",
        Kind::Positive,
        Fallback::Value("60000"),
        API_BUILDER,
        "the retry time base, in ms: retries come after 1, 2, 4, 8 and 16 of it",
    );
    WEBHOOK_TIMEOUT_SECS = Variable::new(
        "KILN_WEBHOOK_TIMEOUT_SECS",
        Kind::Positive,
        Fallback::Value("10"),
        API_BUILDER,
        "the longest one attempt waits for the receiver's answer, in seconds",
    );
    WEBHOOK_CONCURRENCY = Variable::new(
        "KILN_WEBHOOK_CONCURRENCY",
        Kind::Positive,
        Fallback::Value("16"),
        API_BUILDER,
        "deliveries in flight at once, per process",
    );
    WEBHOOK_POLL_MS = Variable::new(
        "KILN_WEBHOOK_POLL_MS",
        Kind::Positive,
        Fallback::Value("500"),
        API_BUILDER,
        "how often due deliveries are looked for, in ms",
    );
}

/// How webhook deliveries run (in every API and builder process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Whether this process delivers (`KILN_WEBHOOK_DELIVERY=on|off`).
    pub deliver: bool,
    /// The retry time base (`KILN_WEBHOOK_RETRY_UNIT_MS`): retries come after 1, 2, 4, 8 and 16
    /// of it. One minute in production; tests shorten it.
    pub retry_unit: Duration,
    /// The longest one attempt waits for the receiver's answer.
    pub timeout: Duration,
    /// Deliveries in flight at once, per process.
    pub concurrency: usize,
    /// How often due deliveries are looked for.
    pub poll: Duration,
}
