//! Request signatures of the product back end:
//! `X-Kiln-Signature: sha256=<hex HMAC-SHA256(secret, "{timestamp}.{METHOD}.{path_and_query}.{body}")>`
//! with `X-Kiln-Timestamp: <unix seconds>`, at most [`MAX_SKEW_SECS`] away from now. With an
//! `X-Kiln-Nonce` (1-64 of `[A-Za-z0-9_-]`), the signed text is
//! `"{timestamp}.{nonce}.{METHOD}.{path_and_query}.{body}"`: the same request twice in one second
//! is then two signatures, since the API accepts a signature that changes something once. (A
//! method never holds `/` and a path always starts with one, so the two forms cannot be taken
//! for each other.)

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const TIMESTAMP_HEADER: &str = "x-kiln-timestamp";
pub const SIGNATURE_HEADER: &str = "x-kiln-signature";
pub const NONCE_HEADER: &str = "x-kiln-nonce";
/// A back end's key for one logical request (`POST /v1/builds` and the seed's aliases): a retry
/// with the same key and body is answered with the first answer, and may carry the same
/// signature again.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
pub const MAX_SKEW_SECS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Kiln-Timestamp is not a unix time in seconds")]
    BadTimestamp,
    #[error("X-Kiln-Timestamp is more than 300 seconds away from the server's clock")]
    Stale,
    #[error("X-Kiln-Signature must be sha256=<64 hex digits>")]
    Malformed,
    #[error("X-Kiln-Signature does not match the request")]
    Mismatch,
    #[error("X-Kiln-Nonce must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")]
    BadNonce,
}

fn mac(
    secret: &[u8],
    timestamp: &str,
    nonce: Option<&str>,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    if let Some(nonce) = nonce {
        mac.update(nonce.as_bytes());
        mac.update(b".");
    }
    mac.update(method.to_ascii_uppercase().as_bytes());
    mac.update(b".");
    mac.update(path_and_query.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The `X-Kiln-Signature` value for a request.
pub fn sign_request(
    secret: &[u8],
    timestamp: i64,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    sign(secret, timestamp, None, method, path_and_query, body)
}

/// The `X-Kiln-Signature` value for a request sent with `X-Kiln-Nonce: {nonce}`.
pub fn sign_request_with_nonce(
    secret: &[u8],
    timestamp: i64,
    nonce: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    sign(secret, timestamp, Some(nonce), method, path_and_query, body)
}

fn sign(
    secret: &[u8],
    timestamp: i64,
    nonce: Option<&str>,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let mac = mac(
        secret,
        &timestamp.to_string(),
        nonce,
        method,
        path_and_query,
        body,
    );
    format!("sha256={}", hex::encode(mac))
}

/// A fresh nonce: 128 random bits in hex.
pub fn nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn nonce_is_valid(nonce: &str) -> bool {
    (1..=64).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A request whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signature's bytes: one value however its hex digits were written, for replay checks.
    pub mac: Vec<u8>,
    /// How long the signature stays acceptable: until its timestamp leaves the window.
    pub acceptable_for: std::time::Duration,
}

/// The headers of a signed request.
#[derive(Debug, Clone, Copy)]
pub struct SignedHeaders<'a> {
    pub timestamp: &'a str,
    pub signature: &'a str,
    pub nonce: Option<&'a str>,
}

/// Checks a request's signature in constant time.
pub fn verify_request(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now_unix: i64,
) -> Result<Verified, SignatureError> {
    let headers = SignedHeaders {
        timestamp,
        signature,
        nonce: None,
    };
    verify(secret, headers, method, path_and_query, body, now_unix)
}

/// Checks a request's signature (with its nonce, if it has one) in constant time.
pub fn verify(
    secret: &[u8],
    headers: SignedHeaders<'_>,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now_unix: i64,
) -> Result<Verified, SignatureError> {
    let SignedHeaders {
        timestamp,
        signature,
        nonce,
    } = headers;
    if nonce.is_some_and(|n| !nonce_is_valid(n)) {
        return Err(SignatureError::BadNonce);
    }
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    // `abs_diff`: a timestamp near i64::MIN must not overflow (and, unchecked, wrap into the window).
    if now_unix.abs_diff(ts) > MAX_SKEW_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let given = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .filter(|b| b.len() == 32)
        .ok_or(SignatureError::Malformed)?;
    let expected = mac(secret, timestamp.trim(), nonce, method, path_and_query, body);
    if !bool::from(expected.ct_eq(&given)) {
        return Err(SignatureError::Mismatch);
    }
    // Within the window, so 0..=2 × MAX_SKEW_SECS; and one second more for the clock's rounding.
    let left = (ts + MAX_SKEW_SECS - now_unix + 1).max(1);
    Ok(Verified {
        mac: expected,
        acceptable_for: std::time::Duration::from_secs(left.unsigned_abs()),
    })
}

/// Constant-time comparison of two secrets (bearer tokens).
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_way_to_fail() {
        let now = 1_700_000_000;
        let sig = sign_request(b"k", now, "post", "/v1/builds?x=1", b"{}");
        assert!(verify_request(b"k", &now.to_string(), &sig, "POST", "/v1/builds?x=1", b"{}", now).is_ok());
        let check = |ts: &str, sig: &str, body: &[u8], now: i64| {
            verify_request(b"k", ts, sig, "POST", "/v1/builds?x=1", body, now)
        };
        assert_eq!(
            check(&now.to_string(), &sig, b"{ }", now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&now.to_string(), &sig, b"{}", now + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            check("yesterday", &sig, b"{}", now),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            check(&now.to_string(), "sha256=zz", b"{}", now),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(&now.to_string(), &sig[7..], b"{}", now),
            Err(SignatureError::Malformed)
        );
        let other = sign_request(b"other", now, "POST", "/v1/builds?x=1", b"{}");
        assert_eq!(
            check(&now.to_string(), &other, b"{}", now),
            Err(SignatureError::Mismatch)
        );
        // Timestamps at the ends of i64 are stale, not an overflow (a panic in a debug build,
        // and in a release build `i64::MIN + now` wrapped into the window).
        for ts in [i64::MIN, i64::MIN + now, i64::MAX, -now] {
            assert_eq!(
                check(&ts.to_string(), &sig, b"{}", now),
                Err(SignatureError::Stale),
                "{ts}"
            );
        }
    }

    #[test]
    fn a_nonce_is_signed_and_cannot_be_added_removed_or_changed() {
        let now = 1_700_000_000;
        let with = |nonce: Option<&str>, sig: &str| {
            let headers = SignedHeaders {
                timestamp: "1700000000",
                signature: sig,
                nonce,
            };
            verify(b"k", headers, "POST", "/v1/builds", b"{}", now)
        };
        let plain = sign_request(b"k", now, "POST", "/v1/builds", b"{}");
        let n = nonce();
        assert_eq!(n.len(), 32);
        let nonced = sign_request_with_nonce(b"k", now, &n, "POST", "/v1/builds", b"{}");
        assert_ne!(plain, nonced);
        assert!(with(Some(&n), &nonced).is_ok());
        assert!(with(None, &plain).is_ok());
        assert_eq!(with(None, &nonced), Err(SignatureError::Mismatch));
        assert_eq!(with(Some(&n), &plain), Err(SignatureError::Mismatch));
        assert_eq!(with(Some("other"), &nonced), Err(SignatureError::Mismatch));
        for bad in ["", "a.b", "a b", &"n".repeat(65), "é"] {
            assert_eq!(with(Some(bad), &nonced), Err(SignatureError::BadNonce), "{bad:?}");
        }
    }

    #[test]
    fn a_verified_signature_is_its_bytes_and_lasts_until_its_timestamp_is_stale() {
        let now = 1_700_000_000;
        let sig = sign_request(b"k", now, "POST", "/", b"");
        let verify = |sig: &str, at: i64| verify_request(b"k", &now.to_string(), sig, "POST", "/", b"", at);
        let v = verify(&sig, now).unwrap();
        assert_eq!(hex::encode(&v.mac), sig["sha256=".len()..]);
        assert_eq!(v.acceptable_for.as_secs(), 301);
        assert_eq!(verify(&sig, now + 300).unwrap().acceptable_for.as_secs(), 1);
        assert_eq!(verify(&sig, now - 300).unwrap().acceptable_for.as_secs(), 601);
        // Upper-case hex is the same signature: the same bytes.
        let upper = format!("sha256={}", sig["sha256=".len()..].to_ascii_uppercase());
        assert_eq!(verify(&upper, now).unwrap().mac, v.mac);
    }
}
