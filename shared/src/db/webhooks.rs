//! Queries on webhook subscriptions and their deliveries.
//!
//! Deliveries are created with the events they carry ([`super::events::record`],
//! [`super::versions::insert_queued`]); here they are claimed, attempted, listed and redelivered.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::DbError;
use crate::domain::{EventType, UserId};

/// A subscription (without its secret, which is shown once, at creation).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// Empty: every event type.
    pub event_types: Vec<EventType>,
    pub user_id: Option<UserId>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A subscription to create (already validated).
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub event_types: Vec<EventType>,
    pub user_id: Option<UserId>,
    pub description: Option<String>,
}

fn corrupt(id: &str, reason: impl ToString) -> DbError {
    DbError::Corrupt {
        id: id.to_owned(),
        reason: reason.to_string(),
    }
}

impl Webhook {
    fn from_row(row: &PgRow) -> Result<Self, DbError> {
        let id: String = row.try_get("id")?;
        let types: Vec<String> = row.try_get("event_types")?;
        let user: Option<String> = row.try_get("user_id")?;
        Ok(Self {
            event_types: types
                .iter()
                .map(|t| {
                    t.parse()
                        .map_err(|e: crate::domain::UnknownValue| corrupt(&id, e))
                })
                .collect::<Result<_, _>>()?,
            user_id: user
                .map(|u| UserId::parse(&u).map_err(|e| corrupt(&id, e)))
                .transpose()?,
            url: row.try_get("url")?,
            description: row.try_get("description")?,
            created_at: row.try_get("created_at")?,
            id,
        })
    }
}

const WEBHOOK_COLUMNS: &str = "id, url, event_types, user_id, description, created_at";

/// Creates a subscription with a fresh signing secret; returns both.
pub async fn create(pool: &PgPool, new: &NewWebhook) -> Result<(Webhook, String), DbError> {
    let id = format!("wh_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    let secret = format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>()));
    let types: Vec<&str> = new.event_types.iter().map(|t| t.as_str()).collect();
    let row = sqlx::query(&format!(
        "insert into webhooks (id, url, event_types, user_id, description, secret)
         values ($1, $2, $3, $4, $5, $6) returning {WEBHOOK_COLUMNS}"
    ))
    .bind(&id)
    .bind(&new.url)
    .bind(types)
    .bind(new.user_id.as_ref().map(|u| u.as_str()))
    .bind(&new.description)
    .bind(&secret)
    .fetch_one(pool)
    .await?;
    Ok((Webhook::from_row(&row)?, secret))
}

pub async fn list(pool: &PgPool) -> Result<Vec<Webhook>, DbError> {
    sqlx::query(&format!("select {WEBHOOK_COLUMNS} from webhooks order by id"))
        .fetch_all(pool)
        .await?
        .iter()
        .map(Webhook::from_row)
        .collect()
}

pub async fn get(pool: &PgPool, id: &str) -> Result<Option<Webhook>, DbError> {
    sqlx::query(&format!("select {WEBHOOK_COLUMNS} from webhooks where id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(Webhook::from_row)
        .transpose()
}

/// Deletes a subscription and its deliveries; false when there was none.
pub async fn delete(pool: &PgPool, id: &str) -> Result<bool, DbError> {
    let done = sqlx::query("delete from webhooks where id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub n: i32,
    pub at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// A delivery of one event to one subscription, with every attempt so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    pub webhook_id: String,
    pub build_id: String,
    pub event_id: i32,
    #[serde(rename = "type")]
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub redelivery_of: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub payload: serde_json::Value,
    pub attempt_log: Vec<Attempt>,
}

const DELIVERY_COLUMNS: &str = "d.id, d.webhook_id, d.build_id, d.event_id, d.event_type, d.status,
    d.attempts, d.next_attempt_at, d.last_status_code, d.last_error, d.redelivery_of, d.created_at,
    d.delivered_at, d.payload,
    (select coalesce(jsonb_agg(jsonb_build_object('n', a.n, 'at', a.at, 'statusCode', a.status_code,
                                                  'error', a.error, 'durationMs', a.duration_ms)
                               order by a.n), '[]')
     from webhook_attempts a where a.delivery_id = d.id) as attempt_log";

impl Delivery {
    fn from_row(row: &PgRow) -> Result<Self, DbError> {
        let id: String = row.try_get("id")?;
        let status: String = row.try_get("status")?;
        let status =
            DeliveryStatus::parse(&status).ok_or_else(|| corrupt(&id, format!("status {status}")))?;
        let log: serde_json::Value = row.try_get("attempt_log")?;
        Ok(Self {
            webhook_id: row.try_get("webhook_id")?,
            build_id: row.try_get("build_id")?,
            event_id: row.try_get("event_id")?,
            event_type: row.try_get("event_type")?,
            next_attempt_at: match status {
                DeliveryStatus::Pending => Some(row.try_get("next_attempt_at")?),
                _ => None,
            },
            status,
            attempts: row.try_get("attempts")?,
            last_status_code: row.try_get("last_status_code")?,
            last_error: row.try_get("last_error")?,
            redelivery_of: row.try_get("redelivery_of")?,
            created_at: row.try_get("created_at")?,
            delivered_at: row.try_get("delivered_at")?,
            payload: row.try_get("payload")?,
            attempt_log: serde_json::from_value(log).map_err(|e| corrupt(&id, e))?,
            id,
        })
    }
}

/// A subscription's deliveries, newest first, older than `before` when given.
pub async fn deliveries(
    pool: &PgPool,
    webhook: &str,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<Delivery>, DbError> {
    sqlx::query(&format!(
        "select {DELIVERY_COLUMNS} from webhook_deliveries d
         where d.webhook_id = $1 and ($2::text is null or d.id < $2)
         order by d.id desc limit $3"
    ))
    .bind(webhook)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?
    .iter()
    .map(Delivery::from_row)
    .collect()
}

pub async fn delivery(pool: &PgPool, webhook: &str, id: &str) -> Result<Option<Delivery>, DbError> {
    sqlx::query(&format!(
        "select {DELIVERY_COLUMNS} from webhook_deliveries d where d.webhook_id = $1 and d.id = $2"
    ))
    .bind(webhook)
    .bind(id)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(Delivery::from_row)
    .transpose()
}

/// Queues the same payload again, as a new delivery (the old one keeps its history).
pub async fn redeliver(pool: &PgPool, webhook: &str, id: &str) -> Result<Option<Delivery>, DbError> {
    let new_id: Option<String> = sqlx::query_scalar(
        "insert into webhook_deliveries (webhook_id, build_id, event_id, event_type, payload, redelivery_of)
         select webhook_id, build_id, event_id, event_type, payload, id
         from webhook_deliveries where webhook_id = $1 and id = $2
         returning id",
    )
    .bind(webhook)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    match new_id {
        Some(new_id) => delivery(pool, webhook, &new_id).await,
        None => Ok(None),
    }
}

/// A delivery claimed for one attempt.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: String,
    pub webhook_id: String,
    pub url: String,
    pub secret: String,
    pub payload: serde_json::Value,
    pub event_type: String,
    /// Attempts made before this one.
    pub attempts: i32,
}

/// Claims up to `limit` due deliveries: their next attempt moves `lease` ahead, so no other
/// worker takes them while this one tries, and a worker that dies hands them back by itself.
/// A subscription with attempts in flight gets only `per_webhook` minus those (`busy`), any
/// other at most `per_webhook`: a receiver that hangs holds only its own share of the slots.
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    per_webhook: i64,
    busy: &[(String, i64)],
    lease: std::time::Duration,
) -> Result<Vec<DueDelivery>, DbError> {
    let busy_ids: Vec<&str> = busy.iter().map(|(id, _)| id.as_str()).collect();
    let busy_counts: Vec<i64> = busy.iter().map(|(_, n)| *n).collect();
    let rows = sqlx::query(
        "with candidates as (
             select id, webhook_id,
                    row_number() over (partition by webhook_id order by next_attempt_at) as nth
             from webhook_deliveries
             where status = 'pending' and next_attempt_at <= now()),
         due as (
             select d.id from webhook_deliveries d
             join candidates c on c.id = d.id
             left join unnest($3::text[], $5::bigint[]) as b(webhook_id, n) on b.webhook_id = c.webhook_id
             where c.nth <= $4 - coalesce(b.n, 0)
               and d.status = 'pending' and d.next_attempt_at <= now()
             order by d.next_attempt_at
             limit $1
             for update of d skip locked)
         update webhook_deliveries d
         set next_attempt_at = now() + $2 * interval '1 millisecond'
         from due, webhooks w
         where d.id = due.id and w.id = d.webhook_id
         returning d.id, d.webhook_id, d.payload, d.event_type, d.attempts, w.url, w.secret",
    )
    .bind(limit)
    .bind(lease.as_millis() as f64)
    .bind(busy_ids)
    .bind(per_webhook)
    .bind(busy_counts)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DueDelivery {
                id: row.try_get("id")?,
                webhook_id: row.try_get("webhook_id")?,
                url: row.try_get("url")?,
                secret: row.try_get("secret")?,
                payload: row.try_get("payload")?,
                event_type: row.try_get("event_type")?,
                attempts: row.try_get("attempts")?,
            })
        })
        .collect()
}

/// What one attempt got.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy)]
pub enum NextStep {
    Delivered,
    RetryAfter(std::time::Duration),
    Failed,
}

/// Records attempt `n` of a delivery and what follows it. Fenced on the attempt count: when
/// another worker already recorded attempt `n` (this one's lease ran out), nothing is written.
pub async fn record_attempt(
    pool: &PgPool,
    id: &str,
    n: i32,
    outcome: &AttemptOutcome,
    next: NextStep,
) -> Result<bool, DbError> {
    let (status, retry_ms) = match next {
        NextStep::Delivered => (DeliveryStatus::Delivered, None),
        NextStep::RetryAfter(d) => (DeliveryStatus::Pending, Some(d.as_millis() as f64)),
        NextStep::Failed => (DeliveryStatus::Failed, None),
    };
    let done = sqlx::query(
        "with updated as (
             update webhook_deliveries
             set attempts = $2, status = $3, last_status_code = $4, last_error = $5,
                 next_attempt_at = coalesce(now() + $6 * interval '1 millisecond', next_attempt_at),
                 delivered_at = case when $3 = 'delivered' then now() end
             where id = $1 and attempts = $2 - 1
             returning id)
         insert into webhook_attempts (delivery_id, n, status_code, error, duration_ms)
         select id, $2, $4, $5, $7 from updated",
    )
    .bind(id)
    .bind(n)
    .bind(status.as_str())
    .bind(outcome.status_code.map(i32::from))
    .bind(&outcome.error)
    .bind(retry_ms)
    .bind(outcome.duration_ms)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
