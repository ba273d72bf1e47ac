//! The raw-TCP harness: a case's request ([`Send`]: signed, with a bearer token, or bare) written
//! as bytes on a connection of its own, and the answer read off the wire ([`Answer`]).

use std::time::Duration;

use kiln_testkit::signed::Signer;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{HMAC_SECRET, TOKEN};

/// How a case's request is made.
pub(super) enum Send {
    /// Signed by the back end (the signature covers the path exactly as sent).
    Signed {
        method: &'static str,
        path: String,
        body: Vec<u8>,
        headers: Vec<(&'static str, Vec<u8>)>,
    },
    /// With a bearer token.
    Bearer {
        token: String,
        method: &'static str,
        path: String,
        body: Vec<u8>,
    },
    /// These headers and nothing else (no credentials are added).
    Bare {
        method: &'static str,
        path: String,
        headers: Vec<(&'static str, Vec<u8>)>,
        body: Vec<u8>,
    },
}

/// `POST /v1/builds`, signed, with a raw body.
pub(super) fn build_raw(body: impl Into<Vec<u8>>) -> Send {
    signed("POST", "/v1/builds", body)
}

/// `POST /v1/builds`, signed, with a JSON body.
pub(super) fn build(body: Value) -> Send {
    build_raw(body.to_string())
}

pub(super) fn signed(method: &'static str, path: impl Into<String>, body: impl Into<Vec<u8>>) -> Send {
    Send::Signed {
        method,
        path: path.into(),
        body: body.into(),
        headers: Vec::new(),
    }
}

pub(super) fn operator(method: &'static str, path: impl Into<String>) -> Send {
    bearer(TOKEN, method, path, "")
}

pub(super) fn bearer(
    token: &str,
    method: &'static str,
    path: impl Into<String>,
    body: impl Into<Vec<u8>>,
) -> Send {
    Send::Bearer {
        token: token.to_owned(),
        method,
        path: path.into(),
        body: body.into(),
    }
}

/// A request as bytes: the request line, `headers`, Host, Content-Length, Connection: close.
pub(super) fn http(method: &str, path: &str, headers: &[(&str, Vec<u8>)], body: &[u8]) -> Vec<u8> {
    let mut out =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// An answer read off the wire.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Answer {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends raw bytes to `base` (`http://host:port`) and reads the answer to the end.
pub(super) async fn raw(base: &str, request: &[u8]) -> Answer {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut bytes))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&bytes)));
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = bytes[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = &rest[eol + 2 + size + 2..];
    }
}

/// The back end's signature of a request (without a nonce), and its JSON content type.
fn signature_headers(method: &str, path: &str, body: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let signed = Signer::new(HMAC_SECRET).headers_without_nonce(method, path, body);
    let mut headers: Vec<(&'static str, Vec<u8>)> = signed
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    headers.push(("Content-Type", b"application/json".to_vec()));
    headers
}

pub(super) async fn send(base: &str, send: &Send) -> Answer {
    let request = match send {
        Send::Signed {
            method,
            path,
            body,
            headers,
        } => {
            let mut all = signature_headers(method, path, body);
            all.extend(headers.iter().cloned());
            http(method, path, &all, body)
        }
        Send::Bearer {
            token,
            method,
            path,
            body,
        } => {
            let headers = [
                ("Authorization", format!("Bearer {token}").into_bytes()),
                ("Content-Type", b"application/json".to_vec()),
            ];
            http(method, path, &headers, body)
        }
        Send::Bare {
            method,
            path,
            headers,
            body,
        } => http(method, path, headers, body),
    };
    raw(base, &request).await
}
