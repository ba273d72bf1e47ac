//! User tokens: made by an operator (or the back end), shown once, stored as a hash, scoped to
//! one user (another user's things answer 404, exactly as missing ones), revocable.

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options, TestApp};

fn site() -> Value {
    json!([{ "path": "index.html", "content": "<h1>mine</h1>" }])
}

/// A request with `token` as the bearer token: (status, JSON body or null).
async fn call(app: &TestApp, token: &str, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut req = app
        .client
        .request(method.parse().unwrap(), format!("{}{path}", app.api))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn token_for(app: &TestApp, user: &str) -> (String, String) {
    let (status, body) = app
        .send_json(
            "POST",
            "/v1/tokens",
            &json!({ "userId": user, "description": "laptop" }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("kiln_ut_") && token.len() == 8 + 64, "{token}");
    (body["id"].as_str().unwrap().to_owned(), token)
}

#[tokio::test]
async fn a_user_token_sees_only_its_own_user_and_others_look_missing() {
    let app = spawn_app(Options::without_builders()).await;
    let (alice_token_id, alice) = token_for(&app, "u_alice").await;
    let (_, bob) = token_for(&app, "u_bob").await;

    // Kiln keeps only the hash: the list never shows the token.
    let (status, list) = call(&app, &alice, "GET", "/v1/tokens", None).await;
    assert_eq!(status, 200, "{list}");
    let listed = &list["tokens"][0];
    assert_eq!(
        (listed["id"].as_str(), listed["userId"].as_str()),
        (Some(alice_token_id.as_str()), Some("u_alice"))
    );
    assert!(
        listed.get("token").is_none() && !list.to_string().contains(&alice),
        "{list}"
    );
    let stored: String = sqlx::query_scalar("select token_sha256 from user_tokens where id = $1")
        .bind(&alice_token_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_ne!(stored, alice);

    // Alice builds her own project; Bob's is built by the back end.
    let mine = unique("mine");
    let (status, own) = call(
        &app,
        &alice,
        "POST",
        "/v1/builds",
        Some(&build_body("u_alice", &mine, site())),
    )
    .await;
    assert_eq!(status, 202, "{own}");
    let own_id = own["buildId"].as_str().unwrap().to_owned();
    let theirs = unique("theirs");
    let bobs = app.submit(&build_body("u_bob", &theirs, site())).await;
    let (status, body) = call(
        &app,
        &alice,
        "POST",
        "/v1/builds",
        Some(&build_body("u_bob", &theirs, site())),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("user u_bob not found"))
    );

    // Bob's build answers exactly like a build that does not exist.
    let missing = "01aaaaaaaaaaaaaaaaaaaaaaaa";
    for suffix in ["", "/events", "/events/stream", "/logs", "/logs?follow=true"] {
        let (status, body) = call(&app, &alice, "GET", &format!("/v1/builds/{bobs}{suffix}"), None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some(format!("build {bobs} not found").as_str())),
            "{suffix}"
        );
        let (status, body) = call(
            &app,
            &alice,
            "GET",
            &format!("/v1/builds/{missing}{suffix}"),
            None,
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some(format!("build {missing} not found").as_str())),
            "{suffix}"
        );
    }
    for action in ["cancel", "retry"] {
        let (status, _) = call(
            &app,
            &alice,
            "POST",
            &format!("/v1/builds/{bobs}/{action}"),
            Some(&json!({})),
        )
        .await;
        assert_eq!(status, 404, "{action}");
    }
    let (status, body) = call(
        &app,
        &alice,
        "GET",
        &format!("/v1/projects/u_bob/{theirs}/versions"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some(format!("project u_bob/{theirs} not found").as_str()))
    );
    let (status, body) = call(&app, &alice, "GET", "/v1/projects/u_bob/never-made/latest", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("project u_bob/never-made not found"))
    );
    let (status, _) = call(
        &app,
        &alice,
        "POST",
        &format!("/v1/projects/u_bob/{theirs}/rollback"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 404);

    // Her own things work, and lists hold only them.
    let (status, build) = call(&app, &alice, "GET", &format!("/v1/builds/{own_id}"), None).await;
    assert_eq!((status, build["userId"].as_str()), (200, Some("u_alice")));
    let (status, page) = call(&app, &alice, "GET", "/v1/builds", None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = page["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [own_id.as_str()], "{page}");
    let (status, _) = call(&app, &alice, "GET", "/v1/builds?userId=u_bob", None).await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        &alice,
        "GET",
        &format!("/v1/projects/u_alice/{mine}/versions"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app,
        &alice,
        "POST",
        &format!("/v1/builds/{own_id}/cancel"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 200);

    // The operator's routes do not exist for a user token.
    for (method, path) in [
        ("GET", "/v1/builders"),
        ("GET", "/v1/builders/history"),
        ("GET", "/metrics"),
        ("GET", "/v1/webhooks"),
        ("POST", "/v1/webhooks"),
        ("POST", "/v1/tokens"),
    ] {
        let body = (method == "POST").then(|| json!({ "userId": "u_alice", "url": "http://127.0.0.1:9/" }));
        let (status, _) = call(&app, &alice, method, path, body.as_ref()).await;
        assert_eq!(status, 404, "{method} {path}");
    }

    // Bob cannot revoke Alice's token; she can, and then it no longer works.
    let (status, _) = call(
        &app,
        &bob,
        "DELETE",
        &format!("/v1/tokens/{alice_token_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, revoked) = call(
        &app,
        &alice,
        "DELETE",
        &format!("/v1/tokens/{alice_token_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revokedAt"].is_string(), "{revoked}");
    let (status, body) = call(&app, &alice, "GET", &format!("/v1/builds/{own_id}"), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("the bearer token is not valid"))
    );
    let (status, _) = call(&app, &bob, "GET", &format!("/v1/builds/{bobs}"), None).await;
    assert_eq!(status, 200, "Bob's token still works");
    let (status, _) = call(&app, "kiln_ut_0000", "GET", "/v1/builds", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn tokens_are_made_for_valid_users_by_privileged_callers_only() {
    let app = spawn_app(Options::without_builders()).await;
    for (body, want) in [
        (json!({}), "missing field `userId`"),
        (json!({ "userId": "no spaces" }), "userId"),
        (json!({ "userId": "u", "extra": 1 }), "unknown field `extra`"),
        (
            json!({ "userId": "u", "description": "x".repeat(201) }),
            "200 characters",
        ),
    ] {
        let (status, res) = app.send_json("POST", "/v1/tokens", &body).await;
        assert_eq!(status, 400, "{body} -> {res}");
        assert!(res["error"].as_str().unwrap().contains(want), "{body} -> {res}");
    }
    let (status, res) = app.send_json("GET", "/v1/tokens", &Value::Null).await;
    assert_eq!((status, res["error"].as_str()), (400, Some("userId is required")));
    let (status, _) = app
        .send_json("DELETE", "/v1/tokens/not-an-id", &Value::Null)
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .send_json("DELETE", "/v1/tokens/01aaaaaaaaaaaaaaaaaaaaaaaa", &Value::Null)
        .await;
    assert_eq!(status, 404);
    // The back end (HMAC) may make them too.
    let body = json!({ "userId": "u_signed" });
    let res = app
        .signed("POST", "/v1/tokens", body.to_string().as_bytes())
        .await;
    assert_eq!(res.status(), 201);
}
