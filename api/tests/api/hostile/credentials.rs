//! Credentials from the wrong place (query, cookie, other headers, other schemes).

use base64::Engine as _;
use kiln_shared::signing::sign_request;
use serde_json::{json, Value};

use super::table::{assert_healthy, case, refuse_all, stored};
use super::wire::{bearer, Send};
use crate::helpers::{build_body, spawn_app, unique, Options, HMAC_SECRET, TOKEN};

#[tokio::test]
async fn credentials_from_the_wrong_place_are_refused() {
    let app = spawn_app(Options::without_builders()).await;
    let (status, made) = app
        .send_json("POST", "/v1/tokens", &json!({ "userId": "u" }))
        .await;
    assert_eq!(status, 201);
    let user_token = made["token"].as_str().unwrap().to_owned();
    let body = build_body("u", &unique("creds"), json!([{ "path": "a", "content": "1" }])).to_string();
    let post = |path: &str, headers: Vec<(&'static str, Vec<u8>)>| Send::Bare {
        method: "POST",
        path: path.to_owned(),
        headers,
        body: body.as_bytes().to_vec(),
    };
    let auth = |v: String| vec![("Authorization", v.into_bytes())];
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{TOKEN}:"));
    let in_query = "credentials are not accepted in the query string";
    let mut cases = Vec::new();
    for (name, query) in [
        ("?token=", format!("token={TOKEN}")),
        ("?access_token=", format!("access_token={TOKEN}")),
        ("?api_key=", format!("api_key={TOKEN}")),
        ("?Token= (any case)", format!("Token={TOKEN}")),
        ("?signature=", "signature=sha256%3D00&x-kiln-timestamp=1".into()),
        ("?token= with a user token", format!("token={user_token}")),
    ] {
        cases.push(case(
            name,
            post(&format!("/v1/builds?{query}"), vec![]),
            401,
            in_query,
        ));
    }
    // Even beside valid credentials: the token has leaked into a URL, and the client must know.
    cases.push(case(
        "?token= and a valid header",
        bearer(TOKEN, "GET", format!("/v1/builds?token={TOKEN}"), ""),
        401,
        in_query,
    ));
    for (name, headers, says) in [
        (
            "cookie",
            vec![("Cookie", format!("token={TOKEN}").into_bytes())],
            "cookies are not used for authentication",
        ),
        (
            "cookie with a user token",
            vec![("Cookie", format!("kiln_token={user_token}").into_bytes())],
            "cookies are not used for authentication",
        ),
        (
            "X-Api-Key",
            vec![("X-Api-Key", TOKEN.as_bytes().to_vec())],
            "x-api-key is not read by Kiln",
        ),
        (
            "X-Auth-Token",
            vec![("X-Auth-Token", TOKEN.as_bytes().to_vec())],
            "x-auth-token is not read by Kiln",
        ),
        (
            "X-Kiln-Token",
            vec![("X-Kiln-Token", user_token.as_bytes().to_vec())],
            "x-kiln-token is not read by Kiln",
        ),
        (
            "Proxy-Authorization",
            vec![("Proxy-Authorization", format!("Bearer {TOKEN}").into_bytes())],
            "proxy-authorization is not read by Kiln",
        ),
        (
            "Basic",
            auth(format!("Basic {basic}")),
            "the Basic authentication scheme is not accepted",
        ),
        (
            "Token scheme",
            auth(format!("Token {TOKEN}")),
            "the Token authentication scheme is not accepted",
        ),
        (
            "Digest",
            auth("Digest username=\"op\"".into()),
            "the Digest authentication scheme is not accepted",
        ),
        ("no scheme", auth(TOKEN.into()), "must be: Bearer <token>"),
        ("empty bearer", auth("Bearer ".into()), "must be: Bearer <token>"),
        ("bearer only", auth("Bearer".into()), "must be: Bearer <token>"),
        (
            "two Authorization headers",
            vec![
                ("Authorization", format!("Bearer {user_token}").into_bytes()),
                ("Authorization", format!("Bearer {TOKEN}").into_bytes()),
            ],
            "the authorization header is sent more than once",
        ),
        (
            "Authorization 0xff",
            auth("Bearer \u{0}".into())
                .into_iter()
                .map(|(k, _)| (k, b"Bearer \xff".to_vec()))
                .collect(),
            "the authorization header is not valid text",
        ),
        (
            "HMAC secret as a bearer token",
            auth(format!("Bearer {HMAC_SECRET}")),
            "the bearer token is not valid",
        ),
        (
            "user token, upper case",
            auth(format!("Bearer {}", user_token.to_ascii_uppercase())),
            "the bearer token is not valid",
        ),
        (
            "user token and more",
            auth(format!("Bearer {user_token}x")),
            "the bearer token is not valid",
        ),
        (
            "user token cut short",
            auth(format!("Bearer {}", &user_token[..40])),
            "the bearer token is not valid",
        ),
        (
            "user token twice over",
            auth(format!("Bearer {user_token} {user_token}")),
            "the bearer token is not valid",
        ),
        (
            "operator token with a suffix",
            auth(format!("Bearer {TOKEN}.")),
            "the bearer token is not valid",
        ),
        (
            "operator token, another case",
            auth(format!("Bearer {}", TOKEN.to_ascii_uppercase())),
            "the bearer token is not valid",
        ),
        ("token in the body only", vec![], "authentication required"),
    ] {
        cases.push(case(name, post("/v1/builds", headers), 401, says));
    }
    // A user token signing as if it were the back end's secret.
    let ts = chrono::Utc::now().timestamp();
    let forged = sign_request(user_token.as_bytes(), ts, "POST", "/v1/builds", body.as_bytes());
    cases.push(case(
        "user token as the HMAC key",
        post(
            "/v1/builds",
            vec![
                ("X-Kiln-Timestamp", ts.to_string().into_bytes()),
                ("X-Kiln-Signature", forged.into_bytes()),
            ],
        ),
        401,
        "X-Kiln-Signature does not match the request",
    ));
    // And a revoked token, wherever it is sent.
    let (status, _) = app
        .send_json(
            "DELETE",
            &format!("/v1/tokens/{}", made["id"].as_str().unwrap()),
            &Value::Null,
        )
        .await;
    assert_eq!(status, 200);
    cases.push(case(
        "revoked user token",
        post("/v1/builds", auth(format!("Bearer {user_token}"))),
        401,
        "the bearer token is not valid",
    ));
    for c in &mut cases {
        if let Send::Bare { headers, .. } = &mut c.send {
            headers.push(("Content-Type", b"application/json".to_vec()));
        }
    }

    let before = stored(&app).await;
    refuse_all(&app, "credentials from the wrong place", &cases).await;
    assert_eq!(stored(&app).await, before, "nothing was stored");
    assert_eq!(app.version_count().await, 0);
    assert_healthy(&app).await;
}
