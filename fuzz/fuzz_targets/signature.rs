//! Request signatures (`X-Kiln-Timestamp`, `X-Kiln-Signature`), webhook signatures and the
//! `Authorization` header: no input panics, and what is signed verifies while nothing else does.
#![no_main]

use arbitrary::Arbitrary;
use kiln_api::untrusted;
use kiln_shared::signing::{sign_request, verify_request, MAX_SKEW_SECS};
use kiln_shared::webhooks;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    secret: &'a [u8],
    timestamp: &'a str,
    signature: &'a str,
    method: &'a str,
    path: &'a str,
    body: &'a [u8],
    now: i64,
    authorization: &'a [u8],
    webhook_header: &'a str,
}

fuzz_target!(|i: Input| {
    // Whatever the headers say: an answer, never a panic.
    if let Ok(v) = verify_request(
        i.secret,
        i.timestamp,
        i.signature,
        i.method,
        i.path,
        i.body,
        i.now,
    ) {
        let ts: i64 = i.timestamp.trim().parse().expect("it verified");
        assert!(i.now.abs_diff(ts) <= MAX_SKEW_SECS.unsigned_abs());
        assert!((1..=2 * MAX_SKEW_SECS as u64 + 1).contains(&v.acceptable_for.as_secs()));
    }
    let _ = webhooks::verify("whsec_x", i.webhook_header, i.body, i.now, 300);
    if let Some(Err(e)) = untrusted::bearer(i.authorization) {
        assert!(untrusted::is_client_error(&e), "{e:?}");
    }

    // What is signed verifies, at any time in the window; another body, path or secret does not.
    let now = i.now.clamp(0, 1 << 40);
    let sig = sign_request(i.secret, now, i.method, i.path, i.body);
    let verify = |secret: &[u8], path: &str, body: &[u8], at: i64| {
        verify_request(secret, &now.to_string(), &sig, i.method, path, body, at)
    };
    let v = verify(i.secret, i.path, i.body, now).expect("a fresh signature verifies");
    assert_eq!(format!("sha256={}", hex(&v.mac)), sig);
    assert!(verify(i.secret, i.path, i.body, now + MAX_SKEW_SECS).is_ok());
    assert!(verify(i.secret, i.path, i.body, now + MAX_SKEW_SECS + 1).is_err());
    let mut other = i.body.to_vec();
    other.push(b'x');
    assert!(verify(i.secret, i.path, &other, now).is_err());
    assert!(verify(i.secret, &format!("{}/", i.path), i.body, now).is_err());
    // Another secret. (Not one that differs by trailing zero bytes: HMAC pads a short key with
    // zeros, so "k" and "k\0" are the same key; this target's first run found that, and a
    // secret from the environment cannot hold a NUL.)
    let mut wrong = i.secret.to_vec();
    wrong.push(1);
    assert!(verify(&wrong, i.path, i.body, now).is_err());

    let header = webhooks::sign("whsec_x", now, i.body);
    assert_eq!(webhooks::verify("whsec_x", &header, i.body, now, 300), Ok(()));
    assert!(webhooks::verify("whsec_y", &header, i.body, now, 300).is_err());
});

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
