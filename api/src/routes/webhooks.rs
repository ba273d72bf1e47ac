//! Webhook subscriptions and their deliveries (operator and back end only: a user token would
//! point Kiln's workers at any URL it likes):
//! `POST/GET /v1/webhooks`, `GET/DELETE /v1/webhooks/{id}`,
//! `GET /v1/webhooks/{id}/deliveries`, `POST /v1/webhooks/{id}/deliveries/{deliveryId}/redeliver`.

use actix_web::{web, HttpRequest, HttpResponse};
use kiln_shared::db::webhooks::{self, NewWebhook, Webhook};
use kiln_shared::domain::{EventType, UserId};
use serde::Deserialize;
use serde_json::json;

use super::parse::{json_body, limit, query};
use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

const MAX_URL: usize = 2048;
const MAX_DESCRIPTION: usize = 500;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks", web::post().to(create))
        .route("/webhooks", web::get().to(list))
        .route("/webhooks/{id}", web::get().to(get))
        .route("/webhooks/{id}", web::delete().to(delete))
        .route("/webhooks/{id}/deliveries", web::get().to(deliveries))
        .route(
            "/webhooks/{id}/deliveries/{delivery}/redeliver",
            web::post().to(redeliver),
        );
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    user_id: Option<String>,
    description: Option<String>,
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

async fn create(
    caller: Caller,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    let body: CreateBody = json_body(&body)?;
    let new = body.parse()?;
    let (hook, secret) = webhooks::create(&state.db, &new).await?;
    let mut view = serde_json::to_value(&hook).expect("a webhook always serialises");
    // The only time the secret is shown.
    view["secret"] = secret.into();
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/v1/webhooks/{}", hook.id)))
        .json(view))
}

async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    Ok(HttpResponse::Ok().json(json!({ "webhooks": webhooks::list(&state.db).await? })))
}

async fn get(
    caller: Caller,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    caller.require_privileged()?;
    Ok(HttpResponse::Ok().json(existing(&state, &path).await?))
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    limit: Option<i64>,
    before: Option<String>,
}

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
    Ok(HttpResponse::Ok().json(json!({ "deliveries": rows, "nextCursor": next })))
}

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
