//! Webhook delivery: signing, and the worker every API and builder process runs.
//!
//! A delivery is `POST <url>` with the event as JSON and
//! `X-Kiln-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "{t}.{body}")>`.
//! A 2xx answer delivers it; a network error, a timeout or any other status is retried after 1,
//! 2, 4, 8 and 16 retry units (a minute each by default), and after the sixth failed attempt the
//! delivery is `failed`. Every attempt is recorded. Delivery is at least once: a receiver
//! deduplicates by the payload's `id` (the same for every attempt and redelivery of an event).
//!
//! Pending deliveries live in Postgres, so they survive restarts; each worker claims due ones
//! with a lease and runs each attempt in its own task, so a slow receiver holds a slot for at
//! most the timeout, and one subscription never holds more than a quarter of a process's slots:
//! a receiver that hangs delays neither builds nor other receivers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::WebhookSettings;
use crate::db::webhooks::{self, AttemptOutcome, DueDelivery, NextStep};
use crate::db::PgPool;

pub const SIGNATURE_HEADER: &str = "X-Kiln-Signature";
pub const DELIVERY_HEADER: &str = "X-Kiln-Delivery";
pub const EVENT_HEADER: &str = "X-Kiln-Event";

/// Retry delays, in retry units, after failed attempts 1..=5. Attempt 6 is the last.
pub const RETRY_UNITS: [u32; 5] = [1, 2, 4, 8, 16];
pub const MAX_ATTEMPTS: i32 = RETRY_UNITS.len() as i32 + 1;

/// The longest answer body read from a receiver (it is only logged).
const MAX_ERROR_BODY: usize = 200;

fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Kiln-Signature` value of `body` sent at unix time `t`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    format!(
        "t={t},v1={}",
        hex::encode(mac(secret, t, body).finalize().into_bytes())
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header must be t=<unix seconds>,v1=<hex>")]
    Malformed,
    #[error("the signature's timestamp is more than the tolerance away from now")]
    Stale,
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Checks a signature header against a body, in constant time, as a receiver should.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1.push(hex::decode(v).map_err(|_| VerifyError::Malformed)?),
            _ => {}
        }
    }
    let t = t.ok_or(VerifyError::Malformed)?;
    if v1.is_empty() {
        return Err(VerifyError::Malformed);
    }
    // `abs_diff`: a `t` near i64::MIN must be stale, not an overflow.
    if now.abs_diff(t) > tolerance_secs.unsigned_abs() {
        return Err(VerifyError::Stale);
    }
    let expected = mac(secret, t, body).finalize().into_bytes();
    // Any v1 may match (a secret being rotated signs with both).
    if v1
        .iter()
        .any(|sig| bool::from(sig.as_slice().ct_eq(expected.as_slice())))
    {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// What follows failed attempt `n` (from 1).
pub fn after_failure(n: i32, unit: Duration) -> NextStep {
    match usize::try_from(n - 1).ok().and_then(|i| RETRY_UNITS.get(i)) {
        Some(units) => NextStep::RetryAfter(unit * *units),
        None => NextStep::Failed,
    }
}

/// Delivers due webhooks until `shutdown`.
#[derive(Debug, Clone)]
pub struct Worker {
    db: PgPool,
    client: reqwest::Client,
    settings: WebhookSettings,
    slots: Arc<Semaphore>,
    /// Attempts in flight per subscription, in this process.
    busy: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    metrics: crate::metrics::Metrics,
}

impl Worker {
    pub fn new(db: PgPool, settings: WebhookSettings, metrics: crate::metrics::Metrics) -> Self {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            // A redirect is an answer like any other non-2xx: never followed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kiln-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the webhook client builds");
        let slots = Arc::new(Semaphore::new(settings.concurrency));
        Self {
            db,
            client,
            settings,
            slots,
            busy: Arc::default(),
            metrics,
        }
    }

    /// The share of this process's slots one subscription may hold.
    fn per_webhook(&self) -> usize {
        (self.settings.concurrency / 4).max(1)
    }

    /// Attempts in flight per subscription, now.
    fn in_flight(&self) -> Vec<(String, i64)> {
        let busy = self.busy.lock().expect("busy lock poisoned");
        busy.iter().map(|(id, n)| (id.clone(), *n as i64)).collect()
    }

    fn begin(&self, webhook: &str) {
        *self
            .busy
            .lock()
            .expect("busy lock poisoned")
            .entry(webhook.to_owned())
            .or_default() += 1;
    }

    fn end(&self, webhook: &str) {
        let mut busy = self.busy.lock().expect("busy lock poisoned");
        if let Some(n) = busy.get_mut(webhook) {
            *n -= 1;
            if *n == 0 {
                busy.remove(webhook);
            }
        }
    }

    /// A claimed delivery is another worker's for this long: an attempt, plus a margin.
    fn lease(&self) -> Duration {
        self.settings.timeout + Duration::from_secs(30)
    }

    /// Runs until `shutdown`. Attempts in progress then finish (each within the timeout);
    /// anything claimed and not attempted returns to the others after the lease.
    pub async fn run(self, shutdown: CancellationToken) {
        let tasks = tokio_util::task::TaskTracker::new();
        let mut backoff = Duration::ZERO;
        while !shutdown.is_cancelled() {
            let free = self.slots.available_permits();
            let mut claimed = 0;
            if free > 0 {
                let claimed_now = webhooks::claim_due(
                    &self.db,
                    free as i64,
                    self.per_webhook() as i64,
                    &self.in_flight(),
                    self.lease(),
                )
                .await;
                match claimed_now {
                    Ok(due) => {
                        backoff = Duration::ZERO;
                        claimed = due.len();
                        for d in due {
                            let permit = self.slots.clone().acquire_owned().await.expect("never closed");
                            let this = self.clone();
                            this.begin(&d.webhook_id);
                            let span = tracing::info_span!("webhook_delivery", delivery_id = %d.id, attempt = d.attempts + 1);
                            tasks.spawn(
                                async move {
                                    let webhook = d.webhook_id.clone();
                                    this.attempt(d).await;
                                    this.end(&webhook);
                                    drop(permit);
                                }
                                .instrument(span),
                            );
                        }
                    }
                    Err(e) => {
                        backoff = (backoff * 2).clamp(Duration::from_millis(500), Duration::from_secs(30));
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot claim webhook deliveries");
                    }
                }
            }
            // A full claim means more may be due: look again at once.
            if claimed > 0 && claimed == free {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.settings.poll.max(backoff)) => {}
            }
        }
        tasks.close();
        tasks.wait().await;
    }

    /// One attempt of one delivery, recorded.
    async fn attempt(&self, d: DueDelivery) {
        let n = d.attempts + 1;
        let body = serde_json::to_vec(&d.payload).expect("a JSON value always serialises");
        let t = chrono::Utc::now().timestamp();
        let started = Instant::now();
        let sent = self
            .client
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, sign(&d.secret, t, &body))
            .header(DELIVERY_HEADER, &d.id)
            .header(EVENT_HEADER, &d.event_type)
            .header("X-Kiln-Attempt", n.to_string())
            .body(body)
            .send()
            .await;
        let (status_code, error) = match sent {
            Ok(res) if res.status().is_success() => (Some(res.status().as_u16()), None),
            Ok(res) => {
                let status = res.status();
                let text = res.text().await.unwrap_or_default();
                let excerpt: String = text.chars().take(MAX_ERROR_BODY).collect();
                (
                    Some(status.as_u16()),
                    Some(format!("answered {status}: {excerpt}")),
                )
            }
            Err(e) if e.is_timeout() => (
                None,
                Some(format!("no answer within {} s", self.settings.timeout.as_secs())),
            ),
            Err(e) => (None, Some(error_chain(&e))),
        };
        let outcome = AttemptOutcome {
            status_code,
            error,
            duration_ms: started.elapsed().as_millis().min(i32::MAX as u128) as i32,
        };
        let next = match &outcome.error {
            None => NextStep::Delivered,
            Some(_) => after_failure(n, self.settings.retry_unit),
        };
        match webhooks::record_attempt(&self.db, &d.id, n, &outcome, next).await {
            Ok(true) => {
                use crate::metrics::DeliveryResult;
                self.metrics.webhook_delivery(match next {
                    NextStep::Delivered => DeliveryResult::Delivered,
                    NextStep::RetryAfter(_) => DeliveryResult::Retrying,
                    NextStep::Failed => DeliveryResult::Failed,
                });
                tracing::info!(status = ?outcome.status_code, error = ?outcome.error, next = ?next, "webhook attempt")
            }
            Ok(false) => tracing::warn!("another worker recorded this attempt first"),
            // The lease runs out and the attempt is made again: at least once.
            Err(e) => tracing::warn!(error = %e, "cannot record a webhook attempt"),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_body_does_not() {
        let header = sign("whsec_x", 1_700_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(
            verify("whsec_x", &header, b"{\"a\":1}", 1_700_000_010, 300),
            Ok(())
        );
        assert_eq!(
            verify("whsec_x", &header, b"{\"a\":2}", 1_700_000_010, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("whsec_y", &header, b"{\"a\":1}", 1_700_000_010, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("whsec_x", &header, b"{\"a\":1}", 1_700_001_000, 300),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify("whsec_x", "v1=00", b"", 0, 300),
            Err(VerifyError::Malformed)
        );
        // A timestamp at the end of i64 is stale, not an overflow.
        let now = 1_700_000_010;
        for t in [i64::MIN, i64::MIN + now, i64::MAX] {
            let header = format!("t={t},v1=00");
            assert_eq!(
                verify("whsec_x", &header, b"", now, 300),
                Err(VerifyError::Stale),
                "{t}"
            );
        }
    }

    #[test]
    fn retries_follow_the_schedule_then_fail() {
        let unit = Duration::from_secs(60);
        let delays: Vec<_> = (1..=MAX_ATTEMPTS).map(|n| after_failure(n, unit)).collect();
        let minutes: Vec<u64> = delays
            .iter()
            .filter_map(|d| match d {
                NextStep::RetryAfter(d) => Some(d.as_secs() / 60),
                _ => None,
            })
            .collect();
        assert_eq!(minutes, vec![1, 2, 4, 8, 16]);
        assert!(matches!(delays.last(), Some(NextStep::Failed)));
    }
}
