//! `Idempotency-Key`: a client that retries a request with the same key and body is answered
//! with the first answer, without the request running again; the same key with another body
//! is a 422, and a key whose first request is still running a 409. Only answers are
//! remembered: a refusal releases the key, so a corrected retry with the same key is evaluated.
//! The records are in Redis ([`kiln_shared::redis::Idempotency`]), so every API instance
//! answers a retry alike.

use std::future::Future;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use kiln_shared::redis::{Claim, Idempotency, IdempotencyRecord, IDEMPOTENCY_RENEW_EVERY};
use kiln_shared::signing::IDEMPOTENCY_HEADER;
use serde::Serialize;

use crate::caller::Caller;
use crate::error::ApiError;

/// The request's idempotency key, if it sends one, scoped to its caller: a user token's keys are
/// its user's own, so they never replay another caller's answer.
pub fn key(req: &HttpRequest, caller: &Caller) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let k = v
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| ApiError::BadRequest("Idempotency-Key must be 1-255 visible characters".into()))?;
    Ok(Some(match caller.user() {
        Some(user) => format!("user:{user}:{k}"),
        None => k.to_owned(),
    }))
}

/// What [`run_once`] gives back.
#[derive(Debug)]
pub enum Once<T> {
    /// The request ran now: its answer, to be answered with `status` (and stored as the
    /// replay of its key).
    Ran(T),
    /// An earlier request with the same key and body was answered: its answer again, marked
    /// `Idempotent-Replayed: true`.
    Replayed(HttpResponse),
}

/// Runs `request` at most once per `key` and body (`body_hash`): the first time it runs, and
/// its answer is stored as a `status` with its JSON body; later with the same body the stored
/// answer is replayed. While it runs the key's reservation is renewed, so it outlives a slow
/// request but not a dead one. An error is not stored: the key is released.
pub async fn run_once<T, F>(
    store: &Idempotency,
    key: &str,
    body_hash: &str,
    status: StatusCode,
    request: F,
) -> Result<Once<T>, ApiError>
where
    T: Serialize,
    F: Future<Output = Result<T, ApiError>>,
{
    match store.claim(key, body_hash).await? {
        Claim::Fresh => {}
        Claim::Replay(record) => {
            let status = StatusCode::from_u16(record.status).unwrap_or(status);
            return Ok(Once::Replayed(
                HttpResponse::build(status)
                    .insert_header(("Idempotent-Replayed", "true"))
                    .json(record.response),
            ));
        }
        Claim::InProgress => {
            return Err(ApiError::IdempotencyKeyInUse(
                "a request with this Idempotency-Key is still being processed; retry shortly".into(),
            ))
        }
        Claim::Mismatch => {
            return Err(ApiError::IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request body".into(),
            ))
        }
    }
    let renew = async {
        loop {
            tokio::time::sleep(IDEMPOTENCY_RENEW_EVERY).await;
            if let Err(e) = store.renew(key, body_hash).await {
                tracing::warn!(error = %e, "cannot renew the Idempotency-Key's reservation");
            }
        }
    };
    let answered = tokio::select! {
        answered = request => answered,
        never = renew => never,
    };
    match answered {
        Ok(answer) => {
            let record = IdempotencyRecord {
                body_hash: body_hash.to_owned(),
                status: status.as_u16(),
                response: serde_json::to_value(&answer).expect("an answer always serialises"),
            };
            if let Err(e) = store.complete(key, &record).await {
                tracing::warn!(error = %e, "cannot store the idempotency record");
            }
            Ok(Once::Ran(answer))
        }
        Err(e) => {
            // Refusals are not remembered: a corrected retry with the same key is evaluated.
            if let Err(e) = store.release(key).await {
                tracing::warn!(error = %e, "cannot release the idempotency key");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use kiln_shared::domain::UserId;

    use super::*;

    #[test]
    fn a_user_tokens_keys_are_its_users_own() {
        let req = TestRequest::default()
            .insert_header((IDEMPOTENCY_HEADER, "k-1"))
            .to_http_request();
        assert_eq!(key(&req, &Caller::Backend).unwrap().as_deref(), Some("k-1"));
        let user = Caller::User {
            user_id: UserId::parse("u_7").unwrap(),
            token_id: String::new(),
        };
        assert_eq!(key(&req, &user).unwrap().as_deref(), Some("user:u_7:k-1"));
        let none = TestRequest::default().to_http_request();
        assert_eq!(key(&none, &Caller::Operator).unwrap(), None);
    }

    #[test]
    fn a_key_is_1_to_255_characters() {
        for bad in [String::new(), "k".repeat(256)] {
            let req = TestRequest::default()
                .insert_header((IDEMPOTENCY_HEADER, bad.as_str()))
                .to_http_request();
            assert!(matches!(
                key(&req, &Caller::Backend),
                Err(ApiError::BadRequest(_))
            ));
        }
    }
}
