//! HTTP conventions on the API's routes: a `Location` on every 201 that names what was created,
//! a 405 with `Allow` for a method a route does not have, and `If-None-Match` (lists, weak tags,
//! `*`) where the API answers an `ETag`.

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options, TestApp, TOKEN};

async fn bearer(app: &TestApp, method: &str, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .request(method.parse().unwrap(), format!("{}{path}", app.api))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_201_has_a_location_that_names_what_it_created() {
    let app = spawn_app(Options::without_builders()).await;

    let res = bearer(&app, "POST", "/v1/tokens", &json!({ "userId": "u_loc" })).await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let token: Value = res.json().await.unwrap();
    assert_eq!(location, format!("/v1/tokens/{}", token["id"].as_str().unwrap()));
    // The location is the token's: revoking it there revokes this one.
    let res = bearer(&app, "DELETE", &location, &json!({})).await;
    assert_eq!(res.status(), 200);
    let revoked: Value = res.json().await.unwrap();
    assert_eq!(revoked["id"], token["id"]);
    assert!(revoked["revokedAt"].is_string(), "{revoked}");

    let body = json!({ "url": "https://example.com/hook" });
    let res = bearer(&app, "POST", "/v1/webhooks", &body).await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let hook: Value = res.json().await.unwrap();
    assert_eq!(location, format!("/v1/webhooks/{}", hook["id"].as_str().unwrap()));
    let there = app.get_json(&location).await;
    assert_eq!(there["id"], hook["id"]);
    assert_eq!(there["url"], "https://example.com/hook");
}

#[tokio::test]
async fn a_method_a_route_does_not_have_is_a_405_with_allow() {
    let app = spawn_app(Options::without_builders()).await;
    let id = ulid::Ulid::new().to_string().to_ascii_lowercase();
    for (method, path, allow) in [
        ("PUT", "/v1/builds".to_owned(), "GET, POST"),
        ("DELETE", format!("/v1/builds/{id}"), "GET"),
        ("GET", format!("/v1/builds/{id}/cancel"), "POST"),
        (
            "PATCH",
            format!("/v1/webhooks/wh_{}", "0".repeat(26)),
            "GET, DELETE",
        ),
        (
            "GET",
            format!("/v1/projects/u/p/versions/{id}/pin"),
            "POST, DELETE",
        ),
        (
            "POST",
            format!("/v1/projects/u/p/versions/{id}/files/a/b.txt"),
            "GET",
        ),
        ("POST", "/metrics".to_owned(), "GET"),
        ("GET", "/rebuild-preview".to_owned(), "POST"),
        ("DELETE", "/healthz".to_owned(), "GET"),
        ("POST", "/openapi.json".to_owned(), "GET"),
    ] {
        let res = bearer(&app, method, &path, &json!({})).await;
        assert_eq!(res.status(), 405, "{method} {path}");
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["type"], "urn:kiln:problem:method_not_allowed", "{body}");
        assert_eq!(body["status"], 405);
        assert!(body["detail"].as_str().unwrap().contains(allow), "{body}");
    }
    // A path no route has is still a 404, whatever the method.
    let res = bearer(&app, "PUT", "/v1/nothing/here", &json!({})).await;
    assert_eq!(res.status(), 404);
    // The /v1 routes authenticate first: no credentials, no hint of the methods.
    let res = app
        .client
        .put(format!("{}/v1/builds", app.api))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn if_none_match_with_lists_and_weak_tags_answers_304() {
    let app = spawn_app(Options::without_builders()).await;
    let (user, project) = ("u_inm", unique("inm"));
    let files = json!([{ "path": "index.html", "content": "<h1>etag</h1>" }]);
    let id = app.submit(&build_body(user, &project, files)).await;
    let url = format!("/v1/projects/{user}/{project}/versions/{id}/files/index.html");

    let res = app.get(&url).await;
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(res.text().await.unwrap(), "<h1>etag</h1>");

    let weak = format!("W/{etag}");
    for (header, modified) in [
        (etag.clone(), false),
        (weak.clone(), false),
        (format!("\"other\", {weak}"), false),
        (format!("W/\"x\",{etag}"), false),
        ("*".to_owned(), false),
        ("\"other\"".to_owned(), true),
        ("W/\"other\", \"another\"".to_owned(), true),
    ] {
        let res = app
            .client
            .get(format!("{}{url}", app.api))
            .bearer_auth(TOKEN)
            .header("if-none-match", &header)
            .send()
            .await
            .unwrap();
        if modified {
            assert_eq!(res.status(), 200, "If-None-Match: {header}");
            assert_eq!(res.text().await.unwrap(), "<h1>etag</h1>");
        } else {
            assert_eq!(res.status(), 304, "If-None-Match: {header}");
            assert_eq!(res.headers()["etag"], etag.as_str(), "If-None-Match: {header}");
            assert!(res.bytes().await.unwrap().is_empty());
        }
    }
}
