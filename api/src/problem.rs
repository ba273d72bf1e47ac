//! The API's error answers as RFC 9457 problem details (`application/problem+json`): the
//! [`ProblemType`] codes, one per kind of refusal, each with its constant title and status, and
//! the [`Problem`] body. [`crate::error`] maps every `ApiError` to one; nothing else writes an
//! error body.
//!
//! A problem's `type` is `urn:kiln:problem:<code>`: an absolute URI (RFC 9457 recommends one)
//! that names the code and is never fetched. Kiln is self-hosted, so no web page could stand
//! behind an `https://` type on every farm; the codes are documented in the book instead.

use actix_web::http::StatusCode;
use serde::Serialize;

/// What every problem's `type` starts with; the rest is its code.
pub const TYPE_PREFIX: &str = "urn:kiln:problem:";

/// The type of an answer whose status has no code of its own (RFC 9457: it means no more than
/// the status, and its title is the status's reason phrase).
pub const BLANK_TYPE: &str = "about:blank";

macro_rules! problem_types {
    ($($variant:ident = ($code:literal, $status:literal, $title:literal),)+) => {
        /// The kinds of error answer: each is a stable code, a status and a title.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProblemType {
            $($variant,)+
        }

        impl ProblemType {
            /// Every type, in the order of the table.
            pub const ALL: &'static [ProblemType] = &[$(ProblemType::$variant,)+];

            /// The stable code (`build_in_flight`): what clients decide on.
            pub fn code(self) -> &'static str {
                match self {
                    $(ProblemType::$variant => $code,)+
                }
            }

            /// The HTTP status every answer of this type has.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ProblemType::$variant => {
                        StatusCode::from_u16($status).expect("a valid status")
                    })+
                }
            }

            /// The constant, human-readable summary of the type.
            pub fn title(self) -> &'static str {
                match self {
                    $(ProblemType::$variant => $title,)+
                }
            }
        }
    };
}

problem_types! {
    BadRequest = ("bad_request", 400, "Malformed request"),
    InvalidJson = ("invalid_json", 400, "The body is not the JSON this route takes"),
    Unauthorized = ("unauthorized", 401, "Authentication required"),
    NotFound = ("not_found", 404, "Not found"),
    MethodNotAllowed = ("method_not_allowed", 405, "Method not allowed"),
    RequestTimeout = ("request_timeout", 408, "The request did not arrive in time"),
    BuildInFlight = ("build_in_flight", 409, "Another build of the project is queued or running"),
    RollbackInFlight = ("rollback_in_flight", 409, "A rollback of the project is in progress"),
    WrongStatus = ("wrong_status", 409, "The build's status does not allow this"),
    IdempotencyKeyInUse = ("idempotency_key_in_use", 409, "A request with this Idempotency-Key is still being processed"),
    PayloadTooLarge = ("payload_too_large", 413, "The request body is too large"),
    RangeNotSatisfiable = ("range_not_satisfiable", 416, "The range is outside the file"),
    ValidationFailed = ("validation_failed", 422, "The request is not acceptable"),
    InvalidPath = ("invalid_path", 422, "A file path is not acceptable"),
    PreviewHostTaken = ("preview_host_taken", 422, "The preview host belongs to another project"),
    IdempotencyKeyReused = ("idempotency_key_reused", 422, "The Idempotency-Key was used with another body"),
    RateLimited = ("rate_limited", 429, "Rate limit exceeded"),
    TooManyStreams = ("too_many_streams", 429, "Too many streams open"),
    QuotaExceeded = ("quota_exceeded", 429, "Quota exceeded"),
    HeadersTooLarge = ("headers_too_large", 431, "The request line and headers are too large"),
    InternalError = ("internal_error", 500, "Internal error"),
    Unavailable = ("unavailable", 503, "A dependency is unavailable"),
    QueueUnavailable = ("queue_unavailable", 503, "The build queue is unavailable"),
    NotReady = ("not_ready", 503, "Not ready"),
}

impl ProblemType {
    /// The `type` member: `urn:kiln:problem:<code>`.
    pub fn uri(self) -> String {
        format!("{TYPE_PREFIX}{}", self.code())
    }

    /// The type of an answer actix-web made by itself with `status`, if one has that status
    /// and means no more than it (else the answer's type is `about:blank`).
    pub fn of_status(status: StatusCode) -> Option<ProblemType> {
        Some(match status.as_u16() {
            400 => ProblemType::BadRequest,
            401 => ProblemType::Unauthorized,
            404 => ProblemType::NotFound,
            405 => ProblemType::MethodNotAllowed,
            408 => ProblemType::RequestTimeout,
            413 => ProblemType::PayloadTooLarge,
            431 => ProblemType::HeadersTooLarge,
            500 => ProblemType::InternalError,
            _ => return None,
        })
    }
}

/// Every problem code the API answers with, in the order of the table (the book lists them).
pub fn codes() -> Vec<&'static str> {
    ProblemType::ALL.iter().map(|t| t.code()).collect()
}

/// An error answer's body: RFC 9457's members, then the ones Kiln answered before problem
/// details (`error`, `buildId`, `retryAfter`, `quota`, `limit`, `window`, `checks`) as
/// extensions, so clients that read those keep working.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(
    description = "An RFC 9457 problem: every error answer of the API (`application/problem+json`)",
    example = json!({"type": "urn:kiln:problem:build_in_flight", "title": "Another build of the project is queued or running", "status": 409, "detail": "build 01jc... of u/p is running", "error": "build 01jc... of u/p is running", "buildId": "01jc0000000000000000000000"})
)]
pub struct Problem {
    /// `urn:kiln:problem:<code>` (the codes are listed in the API reference), or `about:blank`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The constant summary of the type.
    pub title: String,
    /// The answer's HTTP status.
    pub status: u16,
    /// What is wrong with this request.
    pub detail: String,
    /// The same as `detail` (the member every error answer had first).
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// Seconds until trying again makes sense (also the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The fleet-wide quota that was used up, its limit and its window (`1h`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^(new_projects_per_user|rebuilds_per_project)$")]
    pub quota: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// `/readyz`: each dependency's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, String>>)]
    pub checks: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Problem {
    /// A problem of `kind` saying `detail`, without extensions.
    pub fn new(kind: ProblemType, detail: String) -> Self {
        Problem {
            kind: kind.uri(),
            title: kind.title().to_owned(),
            status: kind.status().as_u16(),
            error: detail.clone(),
            detail,
            build_id: None,
            retry_after: None,
            quota: None,
            limit: None,
            window: None,
            checks: None,
        }
    }

    /// A problem that means no more than its `status` (`about:blank`).
    pub fn blank(status: StatusCode, detail: String) -> Self {
        Problem {
            kind: BLANK_TYPE.to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            ..Problem::new(ProblemType::BadRequest, detail)
        }
    }
}

/// The media type of every error answer.
pub const CONTENT_TYPE: &str = "application/problem+json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_statuses_are_errors() {
        let mut seen = std::collections::HashSet::new();
        for t in ProblemType::ALL {
            assert!(seen.insert(t.code()), "{} twice", t.code());
            assert!(
                t.code().chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{}",
                t.code()
            );
            assert!(t.status().is_client_error() || t.status().is_server_error());
        }
        for status in [400, 401, 404, 405, 408, 413, 431, 500] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(ProblemType::of_status(status).unwrap().status(), status);
        }
    }
}
