//! Webhook subscriptions and their deliveries (operator and back end only: a user token would
//! point Kiln's workers at any URL it likes):
//! `POST/GET /v1/webhooks`, `GET/DELETE /v1/webhooks/{id}`,
//! `GET /v1/webhooks/{id}/deliveries`, `POST /v1/webhooks/{id}/deliveries/{deliveryId}/redeliver`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use kiln_shared::db::webhooks::{self, Delivery, NewWebhook, Webhook};
use kiln_shared::domain::{EventType, UserId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::parse::{json_body, limit, query};
use super::serve;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::problem::Problem;
use crate::state::AppState;
use crate::views::schemas::{DeliverySchema, EventTypeSchema, WebhookSchema};
use crate::views::sorted;

const MAX_URL: usize = 2048;
const MAX_DESCRIPTION: usize = 500;

pub fn configure(cfg: &mut web::ServiceConfig) {
    serve::<__path_create, _, _>(cfg, "/v1", create);
    serve::<__path_list, _, _>(cfg, "/v1", list);
    serve::<__path_get, _, _>(cfg, "/v1", get);
    serve::<__path_delete, _, _>(cfg, "/v1", delete);
    serve::<__path_deliveries, _, _>(cfg, "/v1", deliveries);
    serve::<__path_redeliver, _, _>(cfg, "/v1", redeliver);
}

/// `POST /v1/webhooks`' body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = NewWebhook)]
struct CreateBody {
    /// An http:// or https:// URL with a host, at most 2048 characters.
    url: Option<String>,
    /// The event types to deliver (none: every type).
    #[schema(value_type = Option<Vec<EventTypeSchema>>)]
    event_types: Option<Vec<String>>,
    /// Only this user's builds' events.
    user_id: Option<String>,
    /// At most 500 bytes.
    description: Option<String>,
}

/// A subscription just made, with its signing secret (this answer only).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CreatedWebhook)]
struct Created {
    #[serde(flatten)]
    #[schema(value_type = WebhookSchema)]
    hook: Webhook,
    /// The HMAC secret deliveries are signed with.
    secret: String,
}

/// `GET /v1/webhooks`' answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    #[schema(value_type = Vec<WebhookSchema>)]
    webhooks: Vec<Webhook>,
}

/// `GET /v1/webhooks/{id}/deliveries`' answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    /// Newest first, with every attempt.
    #[schema(value_type = Vec<DeliverySchema>)]
    deliveries: Vec<Delivery>,
    /// The last delivery's id when the page is full: `before` of the next page.
    next_cursor: Option<String>,
}

fn unprocessable(msg: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(msg.into())
}

impl CreateBody {
    fn parse(self) -> Result<NewWebhook, ApiError> {
        let raw = self
            .url
            .filter(|u| !u.is_empty())
            .ok_or_else(|| unprocessable("url is required"))?;
        if raw.len() > MAX_URL {
            return Err(unprocessable(format!("url is longer than {MAX_URL} characters")));
        }
        let url = url::Url::parse(&raw).map_err(|e| unprocessable(format!("url is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(unprocessable(
                "url must be an http:// or https:// URL with a host",
            ));
        }
        let mut event_types = Vec::new();
        for t in self.event_types.unwrap_or_default() {
            let parsed: EventType = t.parse().map_err(|_| {
                let known: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
                unprocessable(format!(
                    "eventTypes: unknown event type {t:?}; known: {}",
                    known.join(", ")
                ))
            })?;
            if !event_types.contains(&parsed) {
                event_types.push(parsed);
            }
        }
        let user_id = self
            .user_id
            .filter(|u| !u.is_empty())
            .map(|u| UserId::parse(&u))
            .transpose()
            .map_err(|e| unprocessable(e.to_string()))?;
        let description = self.description.filter(|d| !d.is_empty());
        if description.as_ref().is_some_and(|d| d.len() > MAX_DESCRIPTION) {
            return Err(unprocessable(format!(
                "description is longer than {MAX_DESCRIPTION} bytes"
            )));
        }
        Ok(NewWebhook {
            url: url.to_string(),
            event_types,
            user_id,
            description,
        })
    }
}

/// `wh_` and 26 of `0-9a-z`: anything else cannot name a subscription.
fn webhook_id(raw: &str) -> Result<&str, ApiError> {
    let ok = raw
        .strip_prefix("wh_")
        .is_some_and(|r| r.len() == 26 && r.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
    ok.then_some(raw).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "webhook id must be wh_ and 26 characters of 0-9a-z, got {raw:?}"
        ))
    })
}

fn delivery_id(raw: &str) -> Result<&str, ApiError> {
    let ok = raw.strip_prefix("dl_").is_some_and(|r| {
        r.len() == 26
            && r.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    });
    ok.then_some(raw).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "delivery id must be dl_ and 26 lower-case hex digits, got {raw:?}"
        ))
    })
}

async fn existing(state: &AppState, raw: &str) -> Result<Webhook, ApiError> {
    let id = webhook_id(raw)?;
    webhooks::get(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("webhook {id} not found")))
}

/// Subscribe to build events
///
/// The signing secret is in this answer only.
#[utoipa::path(
    post,
    operation_id = "createWebhook",
    path = "/v1/webhooks",
    tag = "webhooks",
    request_body = CreateBody,
    responses(
        (status = 201, description = "The subscription and its secret", body = Created, headers(("Location" = String, description = "The subscription's URL"))),
        (status = 404, description = "A user token (operators and the back end only)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad url, event type or userId (`validation_failed`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn create(
    caller: Caller,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    let body: CreateBody = json_body(&body)?;
    let new = body.parse()?;
    let (hook, secret) = webhooks::create(&state.db, &new).await?;
    let location = format!("/v1/webhooks/{}", hook.id);
    // The only time the secret is shown.
    let mut res = sorted(StatusCode::CREATED, &Created { hook, secret });
    res.headers_mut().insert(
        actix_web::http::header::LOCATION,
        actix_web::http::header::HeaderValue::from_str(&location).map_err(ApiError::internal)?,
    );
    Ok(res)
}

/// Every subscription
///
/// Without their secrets.
#[utoipa::path(
    get,
    operation_id = "listWebhooks",
    path = "/v1/webhooks",
    tag = "webhooks",
    responses(
        (status = 200, description = "The subscriptions", body = WebhookList),
        (status = 404, description = "A user token (operators and the back end only)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    let webhooks = webhooks::list(&state.db).await?;
    Ok(sorted(StatusCode::OK, &WebhookList { webhooks }))
}

/// One subscription
///
/// Without its secret.
#[utoipa::path(
    get,
    operation_id = "getWebhook",
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The subscription's id (`wh_...`)")),
    responses(
        (status = 200, description = "The subscription", body = WebhookSchema),
        (status = 404, description = "Unknown webhook (or a user token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    Ok(HttpResponse::Ok().json(existing(&state, &path).await?))
}

/// Delete a subscription
///
/// The subscription and its deliveries.
#[utoipa::path(
    delete,
    operation_id = "deleteWebhook",
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "The subscription's id (`wh_...`)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "Unknown webhook (or a user token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn delete(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    let id = webhook_id(&path)?;
    if webhooks::delete(&state.db, id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!("webhook {id} not found")))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeliveriesQuery {
    /// 1-100, default 20.
    limit: Option<i64>,
    /// A cursor: `nextCursor` of the page before.
    before: Option<String>,
}

/// A subscription's deliveries
///
/// Newest first, with every attempt.
#[utoipa::path(
    get,
    operation_id = "listWebhookDeliveries",
    path = "/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = String, Path, description = "The subscription's id (`wh_...`)"), DeliveriesQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        (status = 404, description = "Unknown webhook (or a user token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn deliveries(
    caller: Caller,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    let q: DeliveriesQuery = query(&req)?;
    let limit = limit(q.limit)?;
    let before = q.before.as_deref().map(delivery_id).transpose()?;
    let hook = existing(&state, &path).await?;
    let rows = webhooks::deliveries(&state.db, &hook.id, before, limit).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|d| d.id.clone()))
        .flatten();
    Ok(sorted(
        StatusCode::OK,
        &DeliveryPage {
            deliveries: rows,
            next_cursor: next,
        },
    ))
}

/// Send a delivery again
///
/// The delivery's payload, as a new delivery.
#[utoipa::path(
    post,
    operation_id = "redeliverWebhookDelivery",
    path = "/v1/webhooks/{id}/deliveries/{deliveryId}/redeliver",
    tag = "webhooks",
    params(("id" = String, Path, description = "The subscription's id (`wh_...`)"), ("deliveryId" = String, Path, description = "The delivery's id (`dl_...`)")),
    responses(
        (status = 202, description = "The new delivery", body = DeliverySchema),
        (status = 404, description = "Unknown webhook or delivery (or a user token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn redeliver(
    caller: Caller,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    let (hook, delivery) = path.into_inner();
    let hook = existing(&state, &hook).await?;
    let delivery = delivery_id(&delivery)?;
    let new = webhooks::redeliver(&state.db, &hook.id, delivery)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("delivery {delivery} of webhook {} not found", hook.id)))?;
    Ok(HttpResponse::Accepted().json(new))
}
