//! The registry the cache fetches from (`KILN_NPM_REGISTRY`), reached by the daemon itself and
//! only when the farm's egress policy (`KILN_EGRESS_ALLOW`) admits it: an allow-list that does
//! not name the registry is, for the cache, a registry that is down. Requests are retried on
//! errors that may pass (connection failures, timeouts, 5xx, 429), a few times, quickly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use kiln_shared::config::AllowedHost;

/// The largest tarball or metadata document fetched.
pub const MAX_BODY: u64 = 256 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const TRIES: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0} is not allowed by KILN_EGRESS_ALLOW")]
    NotAllowed(String),
    #[error("{url}: {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url}: larger than {MAX_BODY} bytes")]
    TooLarge { url: String },
}

impl UpstreamError {
    /// Not found upstream (as opposed to unreachable).
    pub fn is_not_found(&self) -> bool {
        matches!(self, UpstreamError::Status { status: 404, .. })
    }
}

/// The upstream registry and the policy that decides whether it may be reached.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub registry: url::Url,
    allowed: Arc<Vec<AllowedHost>>,
    client: reqwest::Client,
}

impl Upstream {
    pub fn new(registry: url::Url, allowed: Arc<Vec<AllowedHost>>) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!(
                "kiln-builder/",
                env!("CARGO_PKG_VERSION"),
                " (package cache)"
            ))
            .build()
            .expect("a reqwest client");
        Self {
            registry,
            allowed,
            client,
        }
    }

    /// Whether the egress policy lets the daemon reach `url`.
    pub fn admits(&self, url: &url::Url) -> bool {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return false;
        };
        matches!(url.scheme(), "http" | "https") && self.allowed.iter().any(|a| a.admits(host, port))
    }

    /// The registry's URL of a package's metadata.
    pub fn metadata_url(&self, name: &str) -> url::Url {
        let encoded = name.replace('/', "%2f");
        self.registry
            .join(&encoded)
            .expect("a package name is a valid path")
    }

    /// GETs `url` (with `Accept: accept`): its body and `Content-Type`.
    pub async fn get(&self, url: &url::Url, accept: &str) -> Result<(Bytes, Option<String>), UpstreamError> {
        if !self.admits(url) {
            return Err(UpstreamError::NotAllowed(format!(
                "{}:{}",
                url.host_str().unwrap_or_default(),
                url.port_or_known_default().unwrap_or_default()
            )));
        }
        let mut last = None;
        for attempt in 0..TRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            match self.get_once(url, accept).await {
                Ok(got) => return Ok(got),
                Err(
                    e @ (UpstreamError::Status { status: 500.., .. }
                    | UpstreamError::Status { status: 429, .. }),
                )
                | Err(e @ UpstreamError::Unreachable { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one try"))
    }

    async fn get_once(&self, url: &url::Url, accept: &str) -> Result<(Bytes, Option<String>), UpstreamError> {
        let unreachable = |e: reqwest::Error| UpstreamError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        };
        let response = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(UpstreamError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let too_large = || UpstreamError::TooLarge { url: url.to_string() };
        if response.content_length().is_some_and(|n| n > MAX_BODY) {
            return Err(too_large());
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(unreachable)?;
            if body.len() as u64 + chunk.len() as u64 > MAX_BODY {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((Bytes::from(body), content_type))
    }
}
