//! The API's parsers of untrusted input, one entry point each, public for the fuzz targets
//! (`fuzz/`, see its README). Whatever the input, each returns a typed value or an
//! [`ApiError`] that is a 4xx with a message, and never panics; handlers call the same code.

use actix_web::http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use actix_web::ResponseError;
use kiln_shared::db::versions::ListFilter;
use kiln_shared::domain::{FileLimits, UserId};
use kiln_shared::store::Manifest;

pub use crate::builds::BuildRequest;
use crate::builds::BuildRequestBody;
pub use crate::caller::Caller;
pub use crate::error::ApiError;
use crate::routes;

/// `POST /v1/builds`' body (and the seed aliases'), parsed and checked as admission does
/// before it touches anything.
pub fn build_request(body: &[u8], limits: FileLimits) -> Result<BuildRequest, ApiError> {
    let parsed: BuildRequestBody = routes::parse::json_body(&bytes::Bytes::copy_from_slice(body))?;
    BuildRequest::parse(parsed, limits)
}

/// The bearer token of an `Authorization` header's raw value (`None`: the value is not one an
/// HTTP client could send at all).
pub fn bearer(value: &[u8]) -> Option<Result<String, ApiError>> {
    let value = HeaderValue::from_bytes(value).ok()?;
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value);
    Some(crate::auth::bearer(&headers).map(|t| t.unwrap_or_default().to_owned()))
}

/// A `Last-Event-ID` header's raw value.
pub fn last_event_id(value: &[u8]) -> Result<i64, ApiError> {
    routes::events::last_event_id(value)
}

/// The typed values of one query string as each route that takes a query reads it.
#[derive(Debug)]
pub struct Queries {
    /// `GET /v1/builds`, as an operator and as a user token of `user`.
    pub builds: Result<ListFilter, ApiError>,
    pub builds_as_user: Result<ListFilter, ApiError>,
    /// `GET /v1/builds/{id}/events`: after, limit.
    pub events: Result<(i32, i64), ApiError>,
    /// `GET /v1/builds/{id}/logs` with `Last-Event-ID: 7`: follow, after.
    pub logs: Result<(bool, u64), ApiError>,
}

/// Parses `raw` as every route's query.
pub fn queries(raw: &str, user: &UserId) -> Queries {
    let as_user = Caller::User {
        user_id: user.clone(),
        token_id: String::new(),
    };
    Queries {
        builds: routes::builds::list_filter(raw, &Caller::Operator),
        builds_as_user: routes::builds::list_filter(raw, &as_user),
        events: routes::events::poll_params(raw),
        logs: routes::logs::log_params(raw, Some(7)),
    }
}

/// The file of `manifest` that the preview server answers a request for `url_path` with.
pub fn preview_file<'m>(manifest: &'m Manifest, url_path: &str) -> Option<&'m str> {
    crate::preview::resolve(manifest, url_path).map(|(path, _)| path)
}

/// Whether an error is what a client is told of its own mistake: a 4xx.
pub fn is_client_error(e: &ApiError) -> bool {
    e.status_code().is_client_error()
}
