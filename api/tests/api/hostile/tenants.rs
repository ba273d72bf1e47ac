//! Tenants: a user token reaches nothing of another user on any route.

use serde_json::{json, Value};

use super::table::{assert_healthy, case, refuse_all, stored};
use super::wire::{bearer, send, Send};
use crate::helpers::{build_body, spawn_app, unique, Options, TestApp};

/// A request with `token`: (status, JSON body or null).
async fn as_user(app: &TestApp, token: &str, method: &'static str, path: &str, body: &str) -> (u16, Value) {
    let answer = send(&app.api, &bearer(token, method, path, body)).await;
    (
        answer.status,
        serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_user_token_reaches_nothing_of_another_user_on_any_route() {
    let app = spawn_app(Options::default()).await;
    let token_for = |user: &'static str| {
        let app = &app;
        async move {
            let (status, made) = app
                .send_json("POST", "/v1/tokens", &json!({ "userId": user }))
                .await;
            assert_eq!(status, 201, "{made}");
            (
                made["id"].as_str().unwrap().to_owned(),
                made["token"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (_, alice) = token_for("u_alice").await;
    let (bob_token_id, _) = token_for("u_bob").await;
    let site = |text: &str| json!([{ "path": "index.html", "content": format!("<h1>{text}</h1>") }]);

    // Bob's project: a deployed version, and a failed one (which retry would take).
    let bobs = unique("bobs");
    let b1 = app.submit(&build_body("u_bob", &bobs, site("bob"))).await;
    assert_eq!(app.wait(&b1).await["status"], "deployed");
    let failing = json!([{ "path": "package.json",
        "content": r#"{"name":"f","private":true,"scripts":{"build":"exit 1"}}"# }]);
    let b2 = app
        .submit(&json!({ "userId": "u_bob", "projectId": bobs, "files": failing, "deleted": ["index.html"] }))
        .await;
    assert_eq!(app.wait(&b2).await["status"], "failed");
    // Alice's own project, with a deployed version.
    let alices = unique("alices");
    let a1 = app.submit(&build_body("u_alice", &alices, site("alice"))).await;
    assert_eq!(app.wait(&a1).await["status"], "deployed");
    let (status, hook) = app
        .send_json(
            "POST",
            "/v1/webhooks",
            &json!({ "url": "http://127.0.0.1:9/", "userId": "u_bob" }),
        )
        .await;
    assert_eq!(status, 201);
    let hook = hook["id"].as_str().unwrap().to_owned();

    // Every route, on Bob's things, and the same route on a thing that does not exist: the
    // same 404, word for word.
    let missing = ulid::Ulid::new().to_string().to_ascii_lowercase();
    let bob = format!("/v1/projects/u_bob/{bobs}");
    let nobody = "/v1/projects/u_bob/never-made".to_owned();
    let mine = format!("/v1/projects/u_alice/{alices}");
    // (name, method, path to Bob's thing, path to an absent one, body, the id of Bob's that
    // stands where the absent one's id is named)
    let routes: Vec<(&str, &str, String, String, String, String)> = vec![
        (
            "read a build",
            "GET",
            format!("/v1/builds/{b1}"),
            format!("/v1/builds/{missing}"),
            String::new(),
            b1.clone(),
        ),
        (
            "its events",
            "GET",
            format!("/v1/builds/{b1}/events"),
            format!("/v1/builds/{missing}/events"),
            String::new(),
            b1.clone(),
        ),
        (
            "its event stream",
            "GET",
            format!("/v1/builds/{b1}/events/stream"),
            format!("/v1/builds/{missing}/events/stream"),
            String::new(),
            b1.clone(),
        ),
        (
            "its log",
            "GET",
            format!("/v1/builds/{b1}/logs"),
            format!("/v1/builds/{missing}/logs"),
            String::new(),
            b1.clone(),
        ),
        (
            "its log, followed",
            "GET",
            format!("/v1/builds/{b1}/logs?follow=true"),
            format!("/v1/builds/{missing}/logs?follow=true"),
            String::new(),
            b1.clone(),
        ),
        (
            "cancel",
            "POST",
            format!("/v1/builds/{b1}/cancel"),
            format!("/v1/builds/{missing}/cancel"),
            "{}".into(),
            b1.clone(),
        ),
        (
            "retry",
            "POST",
            format!("/v1/builds/{b2}/retry"),
            format!("/v1/builds/{missing}/retry"),
            "{}".into(),
            b2.clone(),
        ),
        (
            "list by user",
            "GET",
            "/v1/builds?userId=u_bob".into(),
            "/v1/builds?userId=u_nobody".into(),
            String::new(),
            String::new(),
        ),
        (
            "versions",
            "GET",
            format!("{bob}/versions"),
            format!("{nobody}/versions"),
            String::new(),
            String::new(),
        ),
        (
            "latest",
            "GET",
            format!("{bob}/latest"),
            format!("{nobody}/latest"),
            String::new(),
            String::new(),
        ),
        (
            "rollback",
            "POST",
            format!("{bob}/rollback"),
            format!("{nobody}/rollback"),
            format!(r#"{{"versionId":"{b1}"}}"#),
            String::new(),
        ),
        (
            "diff",
            "GET",
            format!("{bob}/versions/{b1}/diff/{b2}"),
            format!("{nobody}/versions/{b1}/diff/{b2}"),
            String::new(),
            String::new(),
        ),
        (
            "files",
            "GET",
            format!("{bob}/versions/{b1}/files"),
            format!("{nobody}/versions/{b1}/files"),
            String::new(),
            String::new(),
        ),
        (
            "a file",
            "GET",
            format!("{bob}/versions/{b1}/files/index.html"),
            format!("{nobody}/versions/{b1}/files/index.html"),
            String::new(),
            String::new(),
        ),
        (
            "export",
            "GET",
            format!("{bob}/versions/{b1}/artifact"),
            format!("{nobody}/versions/{b1}/artifact"),
            String::new(),
            String::new(),
        ),
        (
            "export sources",
            "GET",
            format!("{bob}/versions/{b1}/artifact?source=true"),
            format!("{nobody}/versions/{b1}/artifact?source=true"),
            String::new(),
            String::new(),
        ),
        (
            "pin",
            "POST",
            format!("{bob}/versions/{b1}/pin"),
            format!("{nobody}/versions/{b1}/pin"),
            String::new(),
            String::new(),
        ),
        (
            "unpin",
            "DELETE",
            format!("{bob}/versions/{b1}/pin"),
            format!("{nobody}/versions/{b1}/pin"),
            String::new(),
            String::new(),
        ),
        // Bob's versions through Alice's own project.
        (
            "diff with a foreign version",
            "GET",
            format!("{mine}/versions/{a1}/diff/{b1}"),
            format!("{mine}/versions/{a1}/diff/{missing}"),
            String::new(),
            b1.clone(),
        ),
        (
            "files of a foreign version",
            "GET",
            format!("{mine}/versions/{b1}/files"),
            format!("{mine}/versions/{missing}/files"),
            String::new(),
            b1.clone(),
        ),
        (
            "a file of a foreign version",
            "GET",
            format!("{mine}/versions/{b1}/files/index.html"),
            format!("{mine}/versions/{missing}/files/index.html"),
            String::new(),
            b1.clone(),
        ),
        (
            "export a foreign version",
            "GET",
            format!("{mine}/versions/{b1}/artifact?source=true"),
            format!("{mine}/versions/{missing}/artifact?source=true"),
            String::new(),
            b1.clone(),
        ),
        (
            "pin a foreign version",
            "POST",
            format!("{mine}/versions/{b1}/pin"),
            format!("{mine}/versions/{missing}/pin"),
            String::new(),
            b1.clone(),
        ),
        (
            "environment",
            "GET",
            format!("{bob}/env"),
            format!("{nobody}/env"),
            String::new(),
            String::new(),
        ),
        (
            "set an environment value",
            "PUT",
            format!("{bob}/env/API_URL"),
            format!("{nobody}/env/API_URL"),
            r#"{"value":"https://evil.example"}"#.to_owned(),
            String::new(),
        ),
        (
            "remove an environment value",
            "DELETE",
            format!("{bob}/env/API_URL"),
            format!("{nobody}/env/API_URL"),
            String::new(),
            String::new(),
        ),
        (
            "redeploy",
            "POST",
            format!("{bob}/redeploy"),
            format!("{nobody}/redeploy"),
            "{}".to_owned(),
            String::new(),
        ),
        (
            "list projects by user",
            "GET",
            "/v1/projects?userId=u_bob".into(),
            "/v1/projects?userId=u_nobody".into(),
            String::new(),
            String::new(),
        ),
        (
            "delete a project",
            "DELETE",
            bob.clone(),
            nobody.clone(),
            String::new(),
            String::new(),
        ),
        (
            "delete a user",
            "DELETE",
            "/v1/users/u_bob".into(),
            "/v1/users/u_nobody".into(),
            String::new(),
            String::new(),
        ),
        (
            "read the project",
            "GET",
            bob.clone(),
            nobody.clone(),
            String::new(),
            String::new(),
        ),
        (
            "change its settings",
            "PATCH",
            bob.clone(),
            nobody.clone(),
            r#"{"previewAccess":"public"}"#.into(),
            String::new(),
        ),
        (
            "share its previews",
            "POST",
            format!("{bob}/share-links"),
            format!("{nobody}/share-links"),
            r#"{"ttlSecs":60}"#.into(),
            String::new(),
        ),
        (
            "revoke its share links",
            "DELETE",
            format!("{bob}/share-links"),
            format!("{nobody}/share-links"),
            String::new(),
            String::new(),
        ),
        (
            "list tokens",
            "GET",
            "/v1/tokens?userId=u_bob".into(),
            "/v1/tokens?userId=u_nobody".into(),
            String::new(),
            String::new(),
        ),
        (
            "revoke a token",
            "DELETE",
            format!("/v1/tokens/{bob_token_id}"),
            format!("/v1/tokens/{missing}"),
            String::new(),
            bob_token_id.clone(),
        ),
    ];
    let mut cases = Vec::new();
    for (name, method, theirs, absent, body, id) in routes {
        let method: &'static str = match method {
            "GET" => "GET",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            _ => "DELETE",
        };
        let (status, expected) = as_user(&app, &alice, method, &absent, &body).await;
        assert_eq!(status, 404, "{name} (absent): {expected}");
        let says = expected["error"]
            .as_str()
            .unwrap()
            .replace(&missing, &id)
            .replace("never-made", &bobs)
            .replace("u_nobody", "u_bob");
        cases.push(case(name, bearer(&alice, method, theirs, body), 404, says));
    }
    // Rolling Alice's project back to Bob's version: the answer for a version that is not there.
    let (status, expected) = as_user(
        &app,
        &alice,
        "POST",
        &format!("{mine}/rollback"),
        &format!(r#"{{"versionId":"{missing}"}}"#),
    )
    .await;
    assert_eq!(status, 404, "{expected}");
    cases.push(case(
        "roll back to a foreign version",
        bearer(
            &alice,
            "POST",
            format!("{mine}/rollback"),
            format!(r#"{{"versionId":"{b1}"}}"#),
        ),
        404,
        expected["error"].as_str().unwrap().replace(&missing, &b1),
    ));
    // Creating things for Bob, or as the operator.
    for (name, method, path, body, says) in [
        (
            "build for another user",
            "POST",
            "/v1/builds".to_owned(),
            build_body("u_bob", &bobs, site("mine now")).to_string(),
            "user u_bob not found",
        ),
        (
            "seed new project",
            "POST",
            "/build-preview-for-new-project".into(),
            build_body("u_bob", &unique("new"), site("x")).to_string(),
            "user u_bob not found",
        ),
        (
            "seed rebuild",
            "POST",
            "/rebuild-preview".into(),
            build_body("u_bob", &bobs, site("x")).to_string(),
            "user u_bob not found",
        ),
        (
            "make a token",
            "POST",
            "/v1/tokens".into(),
            r#"{"userId":"u_bob"}"#.into(),
            "no such route",
        ),
        (
            "make a token for oneself",
            "POST",
            "/v1/tokens".into(),
            r#"{"userId":"u_alice"}"#.into(),
            "no such route",
        ),
        (
            "list webhooks",
            "GET",
            "/v1/webhooks".into(),
            String::new(),
            "no such route",
        ),
        (
            "make a webhook",
            "POST",
            "/v1/webhooks".into(),
            r#"{"url":"http://127.0.0.1:9/","userId":"u_alice"}"#.into(),
            "no such route",
        ),
        (
            "read a webhook",
            "GET",
            format!("/v1/webhooks/{hook}"),
            String::new(),
            "no such route",
        ),
        (
            "delete a webhook",
            "DELETE",
            format!("/v1/webhooks/{hook}"),
            String::new(),
            "no such route",
        ),
        (
            "webhook deliveries",
            "GET",
            format!("/v1/webhooks/{hook}/deliveries"),
            String::new(),
            "no such route",
        ),
        (
            "redeliver",
            "POST",
            format!("/v1/webhooks/{hook}/deliveries/dl_0123456789abcdef0123456789/redeliver"),
            String::new(),
            "no such route",
        ),
        (
            "the fleet",
            "GET",
            "/v1/builders".into(),
            String::new(),
            "no such route",
        ),
        (
            "the fleet's history",
            "GET",
            "/v1/builders/history".into(),
            String::new(),
            "no such route",
        ),
        (
            "metrics",
            "GET",
            "/metrics".into(),
            String::new(),
            "no such route",
        ),
    ] {
        cases.push(case(name, bearer(&alice, method, path, body), 404, says));
    }
    // A base version of Bob's in Alice's own request: as unknown as a missing one (422, the
    // answer for an unknown base).
    cases.push(case(
        "a foreign base version",
        bearer(
            &alice,
            "POST",
            "/v1/builds",
            json!({ "userId": "u_alice", "projectId": alices,
            "baseVersionId": b1, "files": site("x") })
            .to_string(),
        ),
        422,
        format!("baseVersionId {b1} is not a version of project u_alice/{alices}"),
    ));

    let before = stored(&app).await;
    refuse_all(&app, "cross-tenant", &cases).await;
    assert_eq!(
        stored(&app).await,
        before,
        "nothing of Bob's changed, nothing was stored"
    );

    // Lists filter rather than refuse: Alice's list never holds Bob's builds.
    let (status, page) = as_user(&app, &alice, "GET", &format!("/v1/builds?projectId={bobs}"), "").await;
    assert_eq!(
        (status, page["builds"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{page}"
    );
    let (status, page) = as_user(&app, &alice, "GET", "/v1/builds?limit=100", "").await;
    assert_eq!(status, 200);
    assert!(
        page["builds"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["userId"] == "u_alice"),
        "{page}"
    );
    // An Idempotency-Key Bob's back end used is not Alice's to replay.
    let key = "shared-key";
    let bob_again = json!({ "userId": "u_bob", "projectId": unique("idem"), "files": site("b") }).to_string();
    let answer = send(
        &app.api,
        &Send::Signed {
            method: "POST",
            path: "/v1/builds".into(),
            body: bob_again.into_bytes(),
            headers: vec![("Idempotency-Key", key.as_bytes().to_vec())],
        },
    )
    .await;
    assert_eq!(answer.status, 202);
    let alice_body =
        json!({ "userId": "u_alice", "projectId": unique("idem"), "files": site("a") }).to_string();
    let answer = send(
        &app.api,
        &Send::Bare {
            method: "POST",
            path: "/v1/builds".into(),
            headers: vec![
                ("Authorization", format!("Bearer {alice}").into_bytes()),
                ("Idempotency-Key", key.as_bytes().to_vec()),
            ],
            body: alice_body.into_bytes(),
        },
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.text());
    assert!(answer.header("idempotent-replayed").is_none());
    let json: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["userId"], "u_alice");
    assert_healthy(&app).await;
}
