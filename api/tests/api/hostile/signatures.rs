//! Signatures: one is accepted once, forged ones never; nonces.

use base64::Engine as _;
use kiln_shared::signing::sign_request;
use serde_json::json;

use super::table::{assert_healthy, case, refuse_all};
use super::wire::{send, Send};
use crate::helpers::{build_body, spawn_app, unique, Options, HMAC_SECRET, TOKEN};

#[tokio::test]
async fn a_signature_is_accepted_once_and_forged_ones_never() {
    let app = spawn_app(Options::without_builders()).await;
    let now = chrono::Utc::now().timestamp();
    let body = build_body("u", &unique("sig"), json!([{ "path": "a", "content": "1" }])).to_string();
    let sign = |key: &[u8], ts: i64, method: &str, path: &str, body: &[u8]| {
        sign_request(key, ts, method, path, body)
    };
    let with = |ts: String, sig: String| -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("X-Kiln-Timestamp", ts.into_bytes()),
            ("X-Kiln-Signature", sig.into_bytes()),
        ]
    };
    let post = |headers: Vec<(&'static str, Vec<u8>)>, body: &str| Send::Bare {
        method: "POST",
        path: "/v1/builds".into(),
        headers,
        body: body.as_bytes().to_vec(),
    };

    // A first use is accepted; the same bytes again, here or on another instance, are not.
    let good = sign(HMAC_SECRET.as_bytes(), now, "POST", "/v1/builds", body.as_bytes());
    let first = send(&app.api, &post(with(now.to_string(), good.clone()), &body)).await;
    assert_eq!(first.status, 202, "{}", first.text());
    let other_api = app.another_api().await;
    let replayed = "this X-Kiln-Signature was already used";
    let upper = format!("sha256={}", good["sha256=".len()..].to_ascii_uppercase());
    let mut cases = vec![
        case(
            "replay",
            post(with(now.to_string(), good.clone()), &body),
            401,
            replayed,
        ),
        case(
            "replay in upper case",
            post(with(now.to_string(), upper), &body),
            401,
            replayed,
        ),
        case(
            "replay with a space",
            post(with(format!(" {now}"), format!(" {good} ")), &body),
            401,
            replayed,
        ),
        case(
            "replay with an Idempotency-Key",
            post(
                {
                    let mut h = with(now.to_string(), good.clone());
                    h.push(("Idempotency-Key", b"fresh-key".to_vec()));
                    h
                },
                &body,
            ),
            401,
            replayed,
        ),
    ];
    let mut count = refuse_all(&app, "signature replays", &cases).await;
    let on_other = send(&other_api, &post(with(now.to_string(), good.clone()), &body)).await;
    assert_eq!(
        on_other.status,
        401,
        "a replay on another API instance: {}",
        on_other.text()
    );
    assert!(on_other.text().contains(replayed));
    count += 1;

    // A DELETE is a change too: a token revoked, then revoked again by a replay.
    let (status, token) = app
        .send_json("POST", "/v1/tokens", &json!({ "userId": "u" }))
        .await;
    assert_eq!(status, 201);
    let delete = format!("/v1/tokens/{}", token["id"].as_str().unwrap());
    let ts = chrono::Utc::now().timestamp();
    let sig = sign(HMAC_SECRET.as_bytes(), ts, "DELETE", &delete, b"");
    let revoke = || Send::Bare {
        method: "DELETE",
        path: delete.clone(),
        headers: with(ts.to_string(), sig.clone()),
        body: Vec::new(),
    };
    assert_eq!(send(&app.api, &revoke()).await.status, 200);
    cases = vec![case("replayed DELETE", revoke(), 401, replayed)];
    count += refuse_all(&app, "signature replays", &cases).await;

    // A retry of one request with its Idempotency-Key is answered (with the first answer),
    // never admitted twice.
    let keyed_body = build_body("u", &unique("keyed"), json!([{ "path": "a", "content": "1" }])).to_string();
    let ts = chrono::Utc::now().timestamp();
    let keyed = || {
        let mut h = with(
            ts.to_string(),
            sign(
                HMAC_SECRET.as_bytes(),
                ts,
                "POST",
                "/v1/builds",
                keyed_body.as_bytes(),
            ),
        );
        h.push(("Idempotency-Key", b"retry-1".to_vec()));
        post(h, &keyed_body)
    };
    let a = send(&app.api, &keyed()).await;
    let b = send(&app.api, &keyed()).await;
    assert_eq!((a.status, b.status), (202, 202), "{} {}", a.text(), b.text());
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    assert_eq!(a.body, b.body);

    // Forgeries and everything malformed.
    let tampered = body.replace("\"1\"", "\"2\"");
    let user_token = "kiln_ut_".to_owned() + &"ab".repeat(32);
    let stale = "X-Kiln-Timestamp is more than 300 seconds away";
    let sig_for = |key: &[u8], ts: i64| sign(key, ts, "POST", "/v1/builds", body.as_bytes());
    cases = vec![
        case(
            "tampered body",
            post(with(now.to_string(), good.clone()), &tampered),
            401,
            "does not match",
        ),
        case(
            "another path",
            post(
                with(
                    now.to_string(),
                    sign(
                        HMAC_SECRET.as_bytes(),
                        now,
                        "POST",
                        "/rebuild-preview",
                        body.as_bytes(),
                    ),
                ),
                &body,
            ),
            401,
            "does not match",
        ),
        case(
            "another method",
            post(
                with(
                    now.to_string(),
                    sign(HMAC_SECRET.as_bytes(), now, "GET", "/v1/builds", body.as_bytes()),
                ),
                &body,
            ),
            401,
            "does not match",
        ),
        case(
            "another timestamp",
            post(with((now + 1).to_string(), good.clone()), &body),
            401,
            "does not match",
        ),
        case(
            "guessed secret",
            post(with(now.to_string(), sig_for(b"guess", now)), &body),
            401,
            "does not match",
        ),
        case(
            "empty secret",
            post(with(now.to_string(), sig_for(b"", now)), &body),
            401,
            "does not match",
        ),
        case(
            "operator token as the key",
            post(with(now.to_string(), sig_for(TOKEN.as_bytes(), now)), &body),
            401,
            "does not match",
        ),
        case(
            "user token as the key",
            post(with(now.to_string(), sig_for(user_token.as_bytes(), now)), &body),
            401,
            "does not match",
        ),
        case(
            "body only",
            post(
                with(
                    now.to_string(),
                    format!(
                        "sha256={}",
                        hex::encode(
                            <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(HMAC_SECRET.as_bytes())
                                .map(|mut m| {
                                    hmac::Mac::update(&mut m, body.as_bytes());
                                    hmac::Mac::finalize(m).into_bytes()
                                })
                                .unwrap()
                        )
                    ),
                ),
                &body,
            ),
            401,
            "does not match",
        ),
        case(
            "stale",
            post(
                with(
                    (now - 301).to_string(),
                    sig_for(HMAC_SECRET.as_bytes(), now - 301),
                ),
                &body,
            ),
            401,
            stale,
        ),
        case(
            "future",
            post(
                with(
                    (now + 400).to_string(),
                    sig_for(HMAC_SECRET.as_bytes(), now + 400),
                ),
                &body,
            ),
            401,
            stale,
        ),
        case(
            "i64::MIN",
            post(
                with(i64::MIN.to_string(), sig_for(HMAC_SECRET.as_bytes(), i64::MIN)),
                &body,
            ),
            401,
            stale,
        ),
        case(
            "i64::MIN + now",
            post(
                with(
                    (i64::MIN + now).to_string(),
                    sig_for(HMAC_SECRET.as_bytes(), i64::MIN + now),
                ),
                &body,
            ),
            401,
            stale,
        ),
        case(
            "i64::MAX",
            post(with(i64::MAX.to_string(), good.clone()), &body),
            401,
            stale,
        ),
        case(
            "timestamp past i64",
            post(with("99999999999999999999".into(), good.clone()), &body),
            401,
            "not a unix time",
        ),
        case(
            "timestamp in ms",
            post(with((now * 1000).to_string(), good.clone()), &body),
            401,
            stale,
        ),
        case(
            "timestamp 1e9",
            post(with("1e9".into(), good.clone()), &body),
            401,
            "not a unix time",
        ),
        case(
            "timestamp hex",
            post(with("0x6553f100".into(), good.clone()), &body),
            401,
            "not a unix time",
        ),
        case(
            "timestamp date",
            post(with("2026-11-23T00:00:00Z".into(), good.clone()), &body),
            401,
            "not a unix time",
        ),
        case(
            "timestamp empty",
            post(with(String::new(), good.clone()), &body),
            401,
            "not a unix time",
        ),
        case(
            "timestamp 0xff",
            post(
                vec![
                    ("X-Kiln-Timestamp", b"\xff".to_vec()),
                    ("X-Kiln-Signature", good.clone().into_bytes()),
                ],
                &body,
            ),
            401,
            "the x-kiln-timestamp header is not valid text",
        ),
        case(
            "md5",
            post(with(now.to_string(), "md5=abc".into()), &body),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "upper-case prefix",
            post(with(now.to_string(), good.replace("sha256=", "SHA256=")), &body),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "no prefix",
            post(with(now.to_string(), good["sha256=".len()..].to_owned()), &body),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "63 digits",
            post(with(now.to_string(), good[..good.len() - 1].to_owned()), &body),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "65 digits",
            post(with(now.to_string(), format!("{good}0")), &body),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "not hex",
            post(with(now.to_string(), format!("sha256={}", "g".repeat(64))), &body),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "base64",
            post(
                with(
                    now.to_string(),
                    format!(
                        "sha256={}",
                        base64::engine::general_purpose::STANDARD.encode([0u8; 32])
                    ),
                ),
                &body,
            ),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "stripe style",
            post(
                with(
                    now.to_string(),
                    format!("t={now},v1={}", &good["sha256=".len()..]),
                ),
                &body,
            ),
            401,
            "sha256=<64 hex digits>",
        ),
        case(
            "signature 0xff",
            post(
                vec![
                    ("X-Kiln-Timestamp", now.to_string().into_bytes()),
                    ("X-Kiln-Signature", b"sha256=\xff".to_vec()),
                ],
                &body,
            ),
            401,
            "the x-kiln-signature header is not valid text",
        ),
        case(
            "signature only",
            post(vec![("X-Kiln-Signature", good.clone().into_bytes())], &body),
            401,
            "X-Kiln-Signature needs X-Kiln-Timestamp",
        ),
        case(
            "timestamp only",
            post(vec![("X-Kiln-Timestamp", now.to_string().into_bytes())], &body),
            401,
            "X-Kiln-Timestamp needs X-Kiln-Signature",
        ),
        case(
            "two signatures",
            post(
                {
                    let mut h = with(now.to_string(), sig_for(b"guess", now));
                    h.push(("X-Kiln-Signature", good.clone().into_bytes()));
                    h
                },
                &body,
            ),
            401,
            "x-kiln-signature header is sent more than once",
        ),
        case(
            "two timestamps",
            post(
                {
                    let mut h = with((now - 1000).to_string(), good.clone());
                    h.push(("X-Kiln-Timestamp", now.to_string().into_bytes()));
                    h
                },
                &body,
            ),
            401,
            "x-kiln-timestamp header is sent more than once",
        ),
    ];
    count += refuse_all(&app, "forged signatures", &cases).await;

    // A nonce makes the same request twice in a second two signatures; it is signed, so it can
    // be neither added, changed nor dropped, and a nonce's request is accepted once too.
    let nonced = |nonce: &str, body: &str| {
        let ts = chrono::Utc::now().timestamp();
        let sig = kiln_shared::signing::sign_request_with_nonce(
            HMAC_SECRET.as_bytes(),
            ts,
            nonce,
            "POST",
            "/v1/builds",
            body.as_bytes(),
        );
        vec![
            ("X-Kiln-Timestamp", ts.to_string().into_bytes()),
            ("X-Kiln-Nonce", nonce.as_bytes().to_vec()),
            ("X-Kiln-Signature", sig.into_bytes()),
        ]
    };
    let twice = build_body("u", &unique("twice"), json!([{ "path": "a", "content": "1" }])).to_string();
    let first = send(&app.api, &post(nonced("n-1", &twice), &twice)).await;
    assert_eq!(first.status, 202, "{}", first.text());
    let again = nonced("n-1", &twice);
    let swapped = |mut h: Vec<(&'static str, Vec<u8>)>, nonce: &[u8]| {
        h[1].1 = nonce.to_vec();
        h
    };
    let dropped = |h: Vec<(&'static str, Vec<u8>)>| -> Vec<(&'static str, Vec<u8>)> {
        h.into_iter().filter(|(k, _)| *k != "X-Kiln-Nonce").collect()
    };
    cases = vec![
        case(
            "a nonce's request replayed",
            post(again.clone(), &twice),
            401,
            replayed,
        ),
        case(
            "the nonce changed",
            post(swapped(again.clone(), b"n-2"), &twice),
            401,
            "does not match",
        ),
        case(
            "the nonce dropped",
            post(dropped(again.clone()), &twice),
            401,
            "does not match",
        ),
        case(
            "a nonce added",
            post(
                {
                    let mut h = with(now.to_string(), good.clone());
                    h.push(("X-Kiln-Nonce", b"n-3".to_vec()));
                    h
                },
                &body,
            ),
            401,
            "does not match",
        ),
        case(
            "a nonce with a dot",
            post(swapped(again.clone(), b"a.b"), &twice),
            401,
            "X-Kiln-Nonce must be 1-64 characters",
        ),
        case(
            "a nonce too long",
            post(swapped(again.clone(), &[b'n'; 65]), &twice),
            401,
            "X-Kiln-Nonce must be 1-64 characters",
        ),
        case(
            "two nonces",
            post(
                {
                    let mut h = again.clone();
                    h.push(("X-Kiln-Nonce", b"n-4".to_vec()));
                    h
                },
                &twice,
            ),
            401,
            "x-kiln-nonce header is sent more than once",
        ),
    ];
    count += refuse_all(&app, "nonces", &cases).await;
    // The same request with another nonce, in the same second: a request of its own (here a 409,
    // as the project's first build is still queued).
    let other = send(&app.api, &post(nonced("n-5", &twice), &twice)).await;
    assert_eq!(other.status, 409, "{}", other.text());
    eprintln!("hostile signatures: {count} cases, all refused");
    assert_eq!(
        app.version_count().await,
        3,
        "only the first request, the keyed one and the nonced one were admitted"
    );
    assert_eq!(app.queue_depth().await, 3);
    assert_healthy(&app).await;
}
