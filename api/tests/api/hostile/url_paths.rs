//! Traversal in URL paths and preview hosts in every encoding; malformed ids in paths and queries.

use serde_json::{json, Value};

use super::table::{assert_healthy, case, refuse_all, stored};
use super::wire::{http, operator, raw};
use crate::helpers::{build_body, spawn_app, unique, Options};

#[tokio::test]
async fn traversal_in_url_paths_is_refused_in_every_encoding() {
    let app = spawn_app(Options::without_builders()).await;
    let project = unique("urls");
    let id = app
        .submit(&build_body(
            "u",
            &project,
            json!([{ "path": "index.html", "content": "<h1>x</h1>" }, { "path": "src/a.js", "content": "1" }]),
        ))
        .await;
    let files = format!("/v1/projects/u/{project}/versions/{id}/files");
    let mut cases = Vec::new();
    for (name, tail, says) in [
        ("dot-dot", "../../../etc/passwd", "contains a '..'"),
        ("src/../..", "src/../../x", "contains a '..'"),
        ("%2e%2e", "%2e%2e/%2e%2e/etc/passwd", "contains a '..'"),
        ("%2E%2E", "%2E%2E/%2E%2E/etc/passwd", "contains a '..'"),
        ("..%2f", "..%2f..%2fetc%2fpasswd", "contains a '..'"),
        ("%2e%2e%2f", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "contains a '..'"),
        ("..%5c", "..%5c..%5cwin.ini", "backslash"),
        (
            "double-encoded",
            "%252e%252e/%252e%252e/etc/passwd",
            "percent-encoded",
        ),
        ("absolute", "/etc/passwd", "is absolute"),
        ("%2f absolute", "%2fetc%2fpasswd", "is absolute"),
        ("nul", "index.html%00.png", "NUL"),
        ("control", "a%0ab", "control character"),
        ("one dot leader", "%e2%80%a4%e2%80%a4/etc/passwd", "U+2024"),
        ("fullwidth full stop", "%ef%bc%8e%ef%bc%8e/x", "U+FF0E"),
        ("division slash", "..%e2%88%95..%e2%88%95etc", "U+2215"),
        ("fullwidth solidus", "%ef%bc%8fetc%ef%bc%8fpasswd", "U+FF0F"),
        ("right-to-left override", "a%e2%80%aeb", "U+202E"),
        ("overlong %c0%ae", "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", "UTF-8"),
        ("invalid UTF-8", "a%ff", "UTF-8"),
        ("deep", &vec!["a"; 40].join("/"), "40 levels deep"),
    ] {
        cases.push(case(
            format!("files/{name}"),
            operator("GET", format!("{files}/{tail}")),
            400,
            says,
        ));
    }
    // Ids in paths: every spelling of a traversal is a malformed id.
    for (name, path, says) in [
        (
            "build ../",
            "/v1/builds/..%2f..%2fetc%2fpasswd".to_owned(),
            "build id is not a valid id",
        ),
        (
            "build %2e%2e",
            "/v1/builds/%2e%2e".to_owned(),
            "build id is not a valid id",
        ),
        (
            "build %00",
            format!("/v1/builds/{id}%00"),
            "build id is not a valid id",
        ),
        (
            "build fullwidth",
            "/v1/builds/%ef%bc%8e%ef%bc%8e".to_owned(),
            "build id is not a valid id",
        ),
        (
            "build overlong",
            "/v1/builds/%c0%ae%c0%ae".to_owned(),
            "build id is not a valid id",
        ),
        (
            "events of ../",
            "/v1/builds/%2e%2e/events".to_owned(),
            "build id is not a valid id",
        ),
        (
            "logs of ../",
            "/v1/builds/%2e%2e%2f/logs".to_owned(),
            "build id is not a valid id",
        ),
        (
            "user ..",
            format!("/v1/projects/%2e%2e/{project}/versions"),
            "userId must be",
        ),
        (
            "user ../..",
            "/v1/projects/..%2f..%2fetc/p/versions".to_owned(),
            "userId must be",
        ),
        (
            "project ..",
            "/v1/projects/u/%2e%2e/latest".to_owned(),
            "projectId must be",
        ),
        (
            "project with %2f",
            "/v1/projects/u/p%2f..%2fq/latest".to_owned(),
            "projectId must be",
        ),
        (
            "project fullwidth",
            "/v1/projects/u/p%ef%bc%8e%ef%bc%8e/latest".to_owned(),
            "projectId must be",
        ),
        (
            "project nul",
            "/v1/projects/u/p%00/latest".to_owned(),
            "projectId must be",
        ),
        (
            "version ../",
            format!("/v1/projects/u/{project}/versions/%2e%2e/files"),
            "version id is not a valid id",
        ),
        (
            "diff ../",
            format!("/v1/projects/u/{project}/versions/{id}/diff/%2e%2e%2f{id}"),
            "b is not a valid id",
        ),
        (
            "delete project ..",
            "/v1/projects/u/%2e%2e".to_owned(),
            "projectId must be",
        ),
        (
            "delete user ../..",
            "/v1/users/..%2f..%2fetc".to_owned(),
            "userId must be",
        ),
        (
            "token ../",
            "/v1/tokens/%2e%2e%2f%2e%2e".to_owned(),
            "a token id is 26 characters",
        ),
        (
            "webhook ../",
            "/v1/webhooks/wh_%2e%2e".to_owned(),
            "webhook id must be",
        ),
    ] {
        let method = if name.starts_with("token") || name.starts_with("delete") {
            "DELETE"
        } else {
            "GET"
        };
        cases.push(case(name, operator(method, path), 400, says));
    }
    // Paths that escape the routes answer as the unknown routes they are.
    for path in [
        "/v1/builds/../../etc/passwd".to_owned(),
        "/v1/../../etc/passwd".to_owned(),
        format!("/v1/projects/u/{project}/versions/{id}/files"),
    ] {
        cases.push(case(
            format!("route {path}"),
            operator("GET", path.replace("/files", "/files/")),
            if path.ends_with("/files") { 400 } else { 404 },
            if path.ends_with("/files") {
                "path is empty"
            } else {
                "no such route"
            },
        ));
    }

    let before = stored(&app).await;
    refuse_all(&app, "URL paths", &cases).await;
    assert_eq!(stored(&app).await, before, "nothing was stored");

    // The preview listener serves only what a version's manifest names, whatever the path says
    // (it answers browsers in text; no file outside the store is ever read).
    let preview = format!("http://127.0.0.1:{}", app.preview_port);
    let host = format!("{id}.localhost:{}", app.preview_port);
    let mut refused = 0;
    for path in [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc%2fpasswd",
        "/%252e%252e/etc/passwd",
        "/..%5c..%5cwin.ini",
        "/%c0%ae%c0%ae/etc/passwd",
        "/index.html%00.png",
        "/%ef%bc%8e%ef%bc%8e/etc/passwd",
        "//etc/passwd",
    ] {
        let request = http("GET", path, &[("Host", host.clone().into_bytes())], b"");
        // The first Host is the one http() adds; send the preview host only.
        let request = String::from_utf8_lossy(&request)
            .replace("Host: 127.0.0.1\r\n", "")
            .into_bytes();
        let answer = raw(&preview, &request).await;
        assert_eq!(answer.status, 404, "preview {path}: {}", answer.text());
        assert!(answer.text().contains("not"), "preview {path}: {}", answer.text());
        refused += 1;
    }
    for host in [
        "..",
        "%2e%2e.localhost",
        "a_b.localhost",
        "x.y.localhost",
        "localhost",
    ] {
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let answer = raw(&preview, request.as_bytes()).await;
        assert_eq!(answer.status, 404, "preview host {host}: {}", answer.text());
        refused += 1;
    }
    eprintln!("hostile preview paths and hosts: {refused} cases, all refused");
    assert_healthy(&app).await;
}

#[tokio::test]
async fn malformed_ids_in_paths_and_queries_are_400_and_unknown_ones_404() {
    let app = spawn_app(Options::without_builders()).await;
    let res = app.get("/v1/builds/not-a-ulid").await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("build id is not a valid id"));
    let res = app.get(&format!("/v1/builds/{}", ulid::Ulid::new())).await;
    assert_eq!(res.status(), 404);
    assert!(res.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .ends_with("not found"));
    assert_eq!(app.get("/v1/projects/u%20x/p/versions").await.status(), 400);
    assert_eq!(app.get("/v1/projects/u/p/latest").await.status(), 404);
    assert_eq!(app.get("/v1/nothing-here").await.status(), 404);
}
