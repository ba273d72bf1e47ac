//! The API client: each request with its credentials (a bearer token, or the back end's
//! HMAC signature), and the error of a non-2xx answer.

use anyhow::{bail, Context};
use serde_json::Value;

#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) url: String,
    pub(crate) token: Option<String>,
    pub(crate) hmac_secret: Option<String>,
}

impl Client {
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
        let mut req = self
            .http
            .request(
                method.parse()?,
                format!("{}{path}", self.url.trim_end_matches('/')),
            )
            .header("Content-Type", "application/json")
            .body(raw.clone());
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        } else if let Some(secret) = &self.hmac_secret {
            let ts = chrono::Utc::now().timestamp();
            // A nonce of its own: the API accepts a signature that changes something once.
            let nonce = kiln_shared::signing::nonce();
            let sig = kiln_shared::signing::sign_request_with_nonce(
                secret.as_bytes(),
                ts,
                &nonce,
                method,
                path,
                raw.as_bytes(),
            );
            req = req
                .header("X-Kiln-Timestamp", ts.to_string())
                .header("X-Kiln-Nonce", nonce)
                .header("X-Kiln-Signature", sig);
        } else {
            bail!("no credentials: set KILN_TOKEN (or KILN_HMAC_SECRET)");
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

/// The error of a non-2xx answer: its status and `error`, and the build it names.
pub(crate) fn api_error(status: u16, json: &Value) -> anyhow::Error {
    let error = json["error"].as_str().unwrap_or("no details");
    match json["buildId"].as_str() {
        Some(id) => anyhow::anyhow!("{status}: {error} (build {id})"),
        None => anyhow::anyhow!("{status}: {error}"),
    }
}
