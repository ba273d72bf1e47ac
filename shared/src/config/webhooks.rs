//! How webhook deliveries run.

use std::time::Duration;

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
