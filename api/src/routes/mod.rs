//! One module per resource.

pub mod builders;
pub mod builds;
pub mod events;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod projects;
pub mod tokens;
pub mod versions;
pub mod webhooks;

use actix_web::web;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Parses a JSON body, answering 400 with serde's account of what is wrong.
pub fn json_body<T: DeserializeOwned>(body: &web::Bytes) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::BadRequest(
            "the request body is empty; send JSON".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON: {e}")))
}

/// Parses a query string, answering 400 with what is wrong.
pub fn query<T: DeserializeOwned>(req: &actix_web::HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))
}

/// A page size: default 20, 1-100.
pub fn limit(raw: Option<i64>) -> Result<i64, ApiError> {
    match raw {
        None => Ok(20),
        Some(n) if (1..=100).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "limit must be between 1 and 100 (got {n})"
        ))),
    }
}
