//! A request's JSON body and query string, parsed into typed values, answering 400 with what is
//! wrong; and the page size of a listing.

use actix_web::web;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Parses a JSON body (an object), answering 400 with serde's account of what is wrong:
/// including a key given twice (serde's derive refuses a repeated field; free-form values are
/// [`kiln_shared::domain::StrictJson`]) and nesting past serde_json's recursion limit (128).
pub fn json_body<T: DeserializeOwned>(body: &web::Bytes) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::InvalidJson(
            "the request body is empty; send JSON".into(),
        ));
    }
    // serde reads a struct from an array too, by position (`["u","p"]` for {userId, projectId}):
    // an undocumented form nobody should rely on, refused here.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::InvalidJson(
            "invalid JSON: the body must be a JSON object, not an array".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(format!("invalid JSON: {e}")))
}

/// Parses a request's query string, answering 400 with what is wrong.
pub fn query<T: DeserializeOwned>(req: &actix_web::HttpRequest) -> Result<T, ApiError> {
    query_str(req.query_string())
}

/// Parses a query string, answering 400 with what is wrong.
pub fn query_str<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    web::Query::<T>::from_query(raw)
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
