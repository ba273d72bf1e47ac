//! The API's one error type, mapped to HTTP status once. Every error body is
//! `{"error": "<what is wrong>", ...}`; internal causes are logged and answered with an opaque 500.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use kiln_shared::db::DbError;
use kiln_shared::redis::{QuotaHit, RedisError};
use kiln_shared::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad JSON, bad query, bad id in the path).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    /// Another build of the project is queued or running.
    #[error("{message}")]
    Conflict { message: String, build_id: String },
    /// The same request is still being processed (a concurrent retry with an Idempotency-Key).
    #[error("{0}")]
    InProgress(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The request line and headers are over the cap.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// The request's body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// A rate limit, a quota or the stream cap: `Retry-After` says when to try again.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: std::time::Duration,
        /// The fleet-wide quota that was hit, if it was one.
        quota: Option<QuotaHit>,
    },
    /// Well-formed but not acceptable (a path that escapes, too many files, an unknown base...).
    #[error("{0}")]
    Unprocessable(String),
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
        ApiError::TooManyRequests {
            message: format!(
                "quota exceeded: {} {what} per {}; the next one is possible in {} s",
                hit.limit,
                window_text(hit.window),
                retry_secs(hit.retry_after)
            ),
            retry_after: hit.retry_after,
            quota: Some(hit),
        }
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
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } | ApiError::InProgress(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::QueueUnavailable { .. } | ApiError::Unavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            ApiError::Conflict { message, build_id } | ApiError::QueueUnavailable { message, build_id } => {
                serde_json::json!({ "error": message, "buildId": build_id })
            }
            ApiError::TooManyRequests {
                message,
                retry_after,
                quota,
            } => {
                let mut body =
                    serde_json::json!({ "error": message, "retryAfter": retry_secs(*retry_after) });
                if let Some(hit) = quota {
                    body["quota"] = hit.quota.name().into();
                    body["limit"] = hit.limit.into();
                    body["window"] = window_text(hit.window).into();
                }
                body
            }
            ApiError::Unavailable { what, cause } => {
                tracing::warn!(error = format!("{cause:#}"), "{what} is unavailable");
                serde_json::json!({ "error": self.to_string() })
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                serde_json::json!({ "error": "internal error" })
            }
            other => serde_json::json!({ "error": other.to_string() }),
        };
        let mut res = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized(_) => {
                res.insert_header(("WWW-Authenticate", "Bearer"));
            }
            ApiError::TooManyRequests { retry_after, .. } => {
                res.insert_header(("Retry-After", retry_secs(*retry_after).to_string()));
            }
            ApiError::HeadersTooLarge(_) | ApiError::RequestTimeout(_) => {
                res.insert_header(("Connection", "close"));
            }
            _ => {}
        }
        res.json(body)
    }
}
