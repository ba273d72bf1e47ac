//! The API client: each request with its credentials (a bearer token, or the back end's
//! HMAC signature), and the error of a non-2xx answer ([`ApiFailure`]: the API's problem
//! details, decided on by their `type` code).

use anyhow::{bail, Context};
use serde_json::Value;

use crate::config::{Credentials, Resolved};

#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) url: String,
    pub(crate) credentials: Credentials,
}

/// An API path from its segments, each percent-encoded as one segment (an id holding `/` or
/// `?` stays one segment): `path(&["v1", "builds", id])`.
pub(crate) fn path(segments: &[&str]) -> String {
    let mut url = url::Url::parse("http://kiln/").expect("a valid base");
    url.path_segments_mut()
        .expect("an http URL has segments")
        .pop_if_empty()
        .extend(segments);
    url.path().to_owned()
}

/// `path` with a form-encoded query of the pairs whose value is given.
pub(crate) fn with_query<'a>(
    path: &str,
    pairs: impl IntoIterator<Item = (&'a str, Option<String>)>,
) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            query.append_pair(k, &v);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

impl Client {
    pub(crate) fn new(resolved: &Resolved) -> anyhow::Result<Self> {
        Ok(Client {
            // Idle connections are dropped before the API's keep-alive (5 s) closes them, so a
            // `--follow` that polls never reuses a connection the server is closing.
            http: reqwest::Client::builder()
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .user_agent(concat!("kiln-cli/", env!("CARGO_PKG_VERSION")))
                .build()?,
            url: resolved.url.clone(),
            credentials: resolved.credentials.clone(),
        })
    }

    /// A request with credentials; the raw response.
    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<reqwest::Response> {
        self.prepare(method, path, body)?
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))
    }

    /// An event stream (`text/event-stream`), resumed after `last_id` when given.
    pub(crate) async fn stream(
        &self,
        path: &str,
        last_id: Option<&str>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut req = self.prepare("GET", path, None)?;
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        let status = res.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(res);
        }
        let json = res.json().await.unwrap_or(Value::Null);
        Err(api_error(status, &json))
    }

    pub(crate) fn prepare(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let raw = body.map(|b| b.to_string()).unwrap_or_default();
        // The URL as it will be sent (the url crate percent-encodes what must be), and the
        // signature over that same path and query: the API verifies what it receives.
        let url = url::Url::parse(&format!("{}{path}", self.url.trim_end_matches('/')))
            .with_context(|| format!("not a URL: {}{path}", self.url))?;
        let sent_path = &url[url::Position::BeforePath..];
        let mut req = self
            .http
            .request(method.parse()?, url.clone())
            .header("Content-Type", "application/json")
            .body(raw.clone());
        match &self.credentials {
            Credentials::Token(token) => req = req.bearer_auth(token),
            Credentials::Secret(secret) => {
                let ts = chrono::Utc::now().timestamp();
                // A nonce of its own: the API accepts a signature that changes something once.
                let nonce = kiln_shared::signing::nonce();
                let sig = kiln_shared::signing::sign_request_with_nonce(
                    secret.as_bytes(),
                    ts,
                    &nonce,
                    method,
                    sent_path,
                    raw.as_bytes(),
                );
                req = req
                    .header("X-Kiln-Timestamp", ts.to_string())
                    .header("X-Kiln-Nonce", nonce)
                    .header("X-Kiln-Signature", sig);
            }
            Credentials::None => {
                bail!("no credentials: run `kiln login`, or set KILN_TOKEN (or KILN_HMAC_SECRET)")
            }
        }
        Ok(req)
    }

    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let res = self.request(method, path, body).await?;
        let status = res.status().as_u16();
        let json = res.json().await.unwrap_or(Value::Null);
        Ok((status, json))
    }

    pub(crate) async fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let (status, json) = self.send(method, path, body).await?;
        if !(200..300).contains(&status) {
            return Err(api_error(status, &json));
        }
        Ok(json)
    }

    /// A successful response whose body is not JSON (a diff, a zip).
    pub(crate) async fn raw_ok(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let res = self.request("GET", path, None).await?;
        let status = res.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(res);
        }
        let json = res.json().await.unwrap_or(Value::Null);
        Err(api_error(status, &json))
    }
}

/// A page of a list and the cursor of the next one.
pub(crate) struct Page {
    pub(crate) rows: Vec<Value>,
    pub(crate) next: Option<String>,
}

impl Client {
    /// Reads a list's pages (`{"<name>": [...], "nextCursor": ...}`): the first, or the one
    /// `before` names, or with `all` every one after it. `url` makes a page's path from its
    /// cursor.
    pub(crate) async fn pages(
        &self,
        name: &str,
        before: Option<String>,
        all: bool,
        url: impl Fn(Option<&str>) -> String,
    ) -> anyhow::Result<Page> {
        let mut rows = Vec::new();
        let mut cursor = before;
        loop {
            let page = self.ok("GET", &url(cursor.as_deref()), None).await?;
            rows.extend(page[name].as_array().into_iter().flatten().cloned());
            match page["nextCursor"].as_str().map(str::to_owned) {
                Some(next) if all => cursor = Some(next),
                next => return Ok(Page { rows, next }),
            }
        }
    }
}

/// What every problem `type` of the API starts with; the rest is its code.
const PROBLEM_TYPE_PREFIX: &str = "urn:kiln:problem:";

/// A non-2xx answer of the API (an `application/problem+json` body): its status, its `type`'s
/// code (`not_found`, `rate_limited`...: what the CLI decides on), what it says, and the build
/// it names. Shown as `<status>: <what it says> (build <id>)`.
#[derive(Debug)]
pub(crate) struct ApiFailure {
    status: u16,
    code: Option<String>,
    message: String,
    build_id: Option<String>,
}

impl ApiFailure {
    pub(crate) fn of(status: u16, json: &Value) -> Self {
        ApiFailure {
            status,
            code: json["type"]
                .as_str()
                .and_then(|t| t.strip_prefix(PROBLEM_TYPE_PREFIX))
                .map(str::to_owned),
            message: json["detail"]
                .as_str()
                .or(json["error"].as_str())
                .unwrap_or("no details")
                .to_owned(),
            build_id: json["buildId"].as_str().map(str::to_owned),
        }
    }

    /// The problem's code; none when the answer is not one of Kiln's problems (a proxy's).
    pub(crate) fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// Whether asking again later may succeed: a rate limit, a stream cap, or the API or one
    /// of its dependencies failing; also an answer that is not Kiln's (a proxy in front of it).
    pub(crate) fn is_transient(&self) -> bool {
        self.code().is_none_or(|code| {
            matches!(
                code,
                "rate_limited"
                    | "too_many_streams"
                    | "internal_error"
                    | "unavailable"
                    | "queue_unavailable"
                    | "not_ready"
            )
        })
    }
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)?;
        if let Some(id) = &self.build_id {
            write!(f, " (build {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiFailure {}

/// The error of a non-2xx answer ([`ApiFailure`]).
fn api_error(status: u16, json: &Value) -> anyhow::Error {
    ApiFailure::of(status, json).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries_are_encoded() {
        assert_eq!(path(&["v1", "builds", "a/b?c"]), "/v1/builds/a%2Fb%3Fc");
        assert_eq!(
            with_query("/v1/builds", [("userId", Some("a b&c".into())), ("x", None)]),
            "/v1/builds?userId=a+b%26c"
        );
        assert_eq!(with_query("/v1/tokens", [("userId", None)]), "/v1/tokens");
    }

    #[test]
    fn a_failure_is_decided_on_its_code_and_shown_as_before() {
        let body = serde_json::json!({
            "type": "urn:kiln:problem:build_in_flight",
            "title": "Another build of the project is queued or running",
            "status": 409,
            "detail": "another build of this project is queued or running: b1",
            "error": "another build of this project is queued or running: b1",
            "buildId": "b1",
        });
        let failure = ApiFailure::of(409, &body);
        assert_eq!(failure.code(), Some("build_in_flight"));
        assert!(!failure.is_transient());
        assert_eq!(
            failure.to_string(),
            "409: another build of this project is queued or running: b1 (build b1)"
        );
        let limited = serde_json::json!({ "type": "urn:kiln:problem:rate_limited", "error": "slow down" });
        assert!(ApiFailure::of(429, &limited).is_transient());
        // Not one of Kiln's problems (a proxy's 502): tried again.
        let proxy = ApiFailure::of(502, &Value::Null);
        assert_eq!(
            (proxy.code(), proxy.to_string().as_str()),
            (None, "502: no details")
        );
        assert!(proxy.is_transient());
    }
}
