//! The API's one error type, mapped to HTTP once: every error answer is a problem
//! ([`crate::problem`], `application/problem+json`) whose `type` is the variant's code, with
//! `error` (the message), `buildId`, `retryAfter`, `quota`... as extensions. Internal causes are
//! logged and answered with an opaque 500.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use kiln_shared::db::DbError;
use kiln_shared::redis::{QuotaHit, RedisError};
use kiln_shared::store::StoreError;

use crate::problem::{Problem, ProblemType, CONTENT_TYPE};

/// Each variant is one [`ProblemType`] (see [`ApiError::problem_type`]).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A malformed path segment, query parameter or header, or a body that cannot be read.
    #[error("{0}")]
    BadRequest(String),
    /// The body is not the JSON object the route takes.
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    /// The route exists, not with this method (actix-web's own refusal).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Another build of the project is queued or running.
    #[error("{message}")]
    BuildInFlight { message: String, build_id: String },
    /// A rollback of the project holds its slot.
    #[error("{message}")]
    RollbackInFlight { message: String, build_id: String },
    /// The build's (or version's) status does not allow this: cancel a finished build, retry
    /// one that neither failed nor was cancelled, roll back to or download one not deployed.
    #[error("{message}")]
    WrongStatus { message: String, build_id: String },
    /// The same request is still being processed (a concurrent retry with an Idempotency-Key).
    #[error("{0}")]
    IdempotencyKeyInUse(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A preview's `Range` starts past the end of the file.
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// The request line and headers are over the cap.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// The request's body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// The per-IP rate limit: `Retry-After` says when to try again.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    /// The cap on a client's open streams.
    #[error("{message}")]
    TooManyStreams {
        message: String,
        retry_after: std::time::Duration,
    },
    /// A fleet-wide quota is used up ([`ApiError::over_quota`]).
    #[error("{message}")]
    QuotaExceeded { message: String, hit: QuotaHit },
    /// Well-formed but not acceptable (a bad id, too many files, an unknown base...).
    #[error("{0}")]
    Unprocessable(String),
    /// A file path of the request is refused (it escapes, is given twice, is a file and a
    /// folder...).
    #[error("{0}")]
    InvalidPath(String),
    /// The project's preview host label collides with another project's.
    #[error("{0}")]
    PreviewHostTaken(String),
    /// The Idempotency-Key was used with another body.
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// The queue could not take the build; the build is recorded as failed.
    #[error("{message}")]
    QueueUnavailable { message: String, build_id: String },
    /// A dependency (Redis, Postgres, the artifact store) cannot be reached.
    #[error("{what} is unavailable")]
    Unavailable {
        what: &'static str,
        #[source]
        cause: anyhow::Error,
    },
    /// `/readyz`: a dependency does not answer; `checks` has each one's state.
    #[error("{message}")]
    NotReady {
        message: String,
        checks: serde_json::Map<String, serde_json::Value>,
    },
    /// A refusal actix-web made by itself with a status no variant above has (`about:blank`).
    #[error("{message}")]
    Refused { status: StatusCode, message: String },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }

    /// A used-up fleet-wide quota, as a 429 that names it.
    pub fn over_quota(hit: QuotaHit) -> Self {
        let what = match hit.quota {
            kiln_shared::redis::Quota::NewProjects => "new projects per user",
            kiln_shared::redis::Quota::Rebuilds => "rebuilds per project",
        };
        ApiError::QuotaExceeded {
            message: format!(
                "quota exceeded: {} {what} per {}; the next one is possible in {} s",
                hit.limit,
                window_text(hit.window),
                retry_secs(hit.retry_after)
            ),
            hit,
        }
    }

    /// An error answer actix-web made by itself (a payload over the cap, a wrong method...),
    /// as the variant of its status.
    pub fn of_status(status: StatusCode, message: String) -> Self {
        match ProblemType::of_status(status) {
            Some(ProblemType::BadRequest) => ApiError::BadRequest(message),
            Some(ProblemType::Unauthorized) => ApiError::Unauthorized(message),
            Some(ProblemType::NotFound) => ApiError::NotFound(message),
            Some(ProblemType::MethodNotAllowed) => ApiError::MethodNotAllowed(message),
            Some(ProblemType::RequestTimeout) => ApiError::RequestTimeout(message),
            Some(ProblemType::PayloadTooLarge) => ApiError::PayloadTooLarge(message),
            Some(ProblemType::HeadersTooLarge) => ApiError::HeadersTooLarge(message),
            _ => ApiError::Refused { status, message },
        }
    }

    /// The variant's type (none for [`ApiError::Refused`]: `about:blank`).
    pub fn problem_type(&self) -> Option<ProblemType> {
        Some(match self {
            ApiError::BadRequest(_) => ProblemType::BadRequest,
            ApiError::InvalidJson(_) => ProblemType::InvalidJson,
            ApiError::Unauthorized(_) => ProblemType::Unauthorized,
            ApiError::NotFound(_) => ProblemType::NotFound,
            ApiError::MethodNotAllowed(_) => ProblemType::MethodNotAllowed,
            ApiError::BuildInFlight { .. } => ProblemType::BuildInFlight,
            ApiError::RollbackInFlight { .. } => ProblemType::RollbackInFlight,
            ApiError::WrongStatus { .. } => ProblemType::WrongStatus,
            ApiError::IdempotencyKeyInUse(_) => ProblemType::IdempotencyKeyInUse,
            ApiError::PayloadTooLarge(_) => ProblemType::PayloadTooLarge,
            ApiError::RangeNotSatisfiable(_) => ProblemType::RangeNotSatisfiable,
            ApiError::HeadersTooLarge(_) => ProblemType::HeadersTooLarge,
            ApiError::RequestTimeout(_) => ProblemType::RequestTimeout,
            ApiError::RateLimited { .. } => ProblemType::RateLimited,
            ApiError::TooManyStreams { .. } => ProblemType::TooManyStreams,
            ApiError::QuotaExceeded { .. } => ProblemType::QuotaExceeded,
            ApiError::Unprocessable(_) => ProblemType::ValidationFailed,
            ApiError::InvalidPath(_) => ProblemType::InvalidPath,
            ApiError::PreviewHostTaken(_) => ProblemType::PreviewHostTaken,
            ApiError::IdempotencyKeyReused(_) => ProblemType::IdempotencyKeyReused,
            ApiError::QueueUnavailable { .. } => ProblemType::QueueUnavailable,
            ApiError::Unavailable { .. } => ProblemType::Unavailable,
            ApiError::NotReady { .. } => ProblemType::NotReady,
            ApiError::Refused { .. } => return None,
            ApiError::Internal(_) => ProblemType::InternalError,
        })
    }

    /// `Retry-After`, for the variants that have one.
    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } | ApiError::TooManyStreams { retry_after, .. } => {
                Some(*retry_after)
            }
            ApiError::QuotaExceeded { hit, .. } => Some(hit.retry_after),
            _ => None,
        }
    }

    /// The body of this error's answer: the one place an error becomes one.
    pub fn problem(&self) -> Problem {
        let mut problem = match self.problem_type() {
            Some(kind) => Problem::new(kind, self.to_string()),
            None => Problem::blank(self.status_code(), self.to_string()),
        };
        problem.retry_after = self.retry_after().map(retry_secs);
        match self {
            ApiError::BuildInFlight { build_id, .. }
            | ApiError::RollbackInFlight { build_id, .. }
            | ApiError::WrongStatus { build_id, .. }
            | ApiError::QueueUnavailable { build_id, .. } => problem.build_id = Some(build_id.clone()),
            ApiError::QuotaExceeded { hit, .. } => {
                problem.quota = Some(hit.quota.name());
                problem.limit = Some(hit.limit.into());
                problem.window = Some(window_text(hit.window));
            }
            ApiError::NotReady { checks, .. } => problem.checks = Some(checks.clone()),
            _ => {}
        }
        problem
    }
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_secs(d: std::time::Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// `1h`, `30m`, `10s`.
fn window_text(d: std::time::Duration) -> String {
    match d.as_secs() {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            ApiError::Unavailable {
                what: "postgres",
                cause: e.into(),
            }
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl From<RedisError> for ApiError {
    fn from(e: RedisError) -> Self {
        match e {
            RedisError::Malformed { .. } => ApiError::Internal(e.into()),
            _ => ApiError::Unavailable {
                what: "redis",
                cause: e.into(),
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Io { .. } | StoreError::Remote { .. } => ApiError::Unavailable {
                what: "the artifact store",
                cause: e.into(),
            },
            _ => ApiError::Internal(e.into()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Refused { status, .. } => *status,
            other => other
                .problem_type()
                .map_or(StatusCode::INTERNAL_SERVER_ERROR, ProblemType::status),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Unavailable { what, cause } => {
                tracing::warn!(error = format!("{cause:#}"), "{what} is unavailable");
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
            }
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized(_) => {
                res.insert_header(("WWW-Authenticate", "Bearer"));
            }
            ApiError::HeadersTooLarge(_) | ApiError::RequestTimeout(_) => {
                res.insert_header(("Connection", "close"));
            }
            _ => {}
        }
        if let Some(wait) = self.retry_after() {
            res.insert_header(("Retry-After", retry_secs(wait).to_string()));
        }
        let body = serde_json::to_vec(&self.problem()).expect("a problem serializes");
        res.content_type(CONTENT_TYPE).body(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_of_a_status_without_a_code_is_about_blank() {
        let err = ApiError::of_status(StatusCode::LENGTH_REQUIRED, "length required".into());
        let problem = err.problem();
        assert_eq!(
            (problem.kind.as_str(), problem.title.as_str(), problem.status),
            (crate::problem::BLANK_TYPE, "Length Required", 411)
        );
        assert_eq!(err.status_code(), StatusCode::LENGTH_REQUIRED);
        let res = err.error_response();
        assert_eq!(res.headers().get("content-type").unwrap(), CONTENT_TYPE);
    }

    #[test]
    fn actix_refusals_become_the_variant_of_their_status() {
        for status in [400, 401, 404, 405, 408, 413, 431] {
            let status = StatusCode::from_u16(status).unwrap();
            let err = ApiError::of_status(status, "x".into());
            assert_eq!(err.status_code(), status);
            assert_eq!(err.problem().kind, ProblemType::of_status(status).unwrap().uri());
        }
    }
}
