//! Requests signed as the product back end: `X-Kiln-Timestamp`, `X-Kiln-Nonce` and
//! `X-Kiln-Signature` (HMAC-SHA256 over the timestamp, nonce, method, path and body, by
//! `kiln_shared::signing`), as the API verifies them.

use bytes::Bytes;
use kiln_shared::signing::{nonce, sign_request, sign_request_with_nonce};

pub const TIMESTAMP: &str = "X-Kiln-Timestamp";
pub const NONCE: &str = "X-Kiln-Nonce";
pub const SIGNATURE: &str = "X-Kiln-Signature";

/// Signs requests with the farm's HMAC secret.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    secret: &'a [u8],
}

impl<'a> Signer<'a> {
    pub fn new(secret: &'a str) -> Self {
        Self {
            secret: secret.as_bytes(),
        }
    }

    /// The headers of a request signed now, with a nonce of its own (as a back end that may send
    /// the same request twice in a second signs): timestamp, nonce, signature.
    pub fn headers(&self, method: &str, path: &str, body: &[u8]) -> [(&'static str, String); 3] {
        let ts = chrono::Utc::now().timestamp();
        let nonce = nonce();
        let sig = sign_request_with_nonce(self.secret, ts, &nonce, method, path, body);
        [(TIMESTAMP, ts.to_string()), (NONCE, nonce), (SIGNATURE, sig)]
    }

    /// The headers of a request signed now without a nonce (the older form, which the API
    /// accepts once a timestamp): timestamp, signature.
    pub fn headers_without_nonce(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> [(&'static str, String); 2] {
        let ts = chrono::Utc::now().timestamp();
        let sig = sign_request(self.secret, ts, method, path, body);
        [(TIMESTAMP, ts.to_string()), (SIGNATURE, sig)]
    }

    /// `method {base}{path}` with a JSON `body`, signed with a nonce; not sent yet.
    pub fn request(
        &self,
        client: &reqwest::Client,
        method: &str,
        base: &str,
        path: &str,
        body: impl Into<Bytes>,
    ) -> reqwest::RequestBuilder {
        let body = body.into();
        let mut req = client.request(method.parse().expect("an HTTP method"), format!("{base}{path}"));
        for (name, value) in self.headers(method, path, &body) {
            req = req.header(name, value);
        }
        req.header("Content-Type", "application/json").body(body)
    }
}
