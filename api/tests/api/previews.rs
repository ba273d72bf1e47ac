//! The preview server: host routing, content types, SPA fallback, caching.

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options};

#[tokio::test]
async fn previews_route_by_host_and_fall_back_for_client_routes() {
    let app = spawn_app(Options::default()).await;
    let files = json!([
        { "path": "index.html", "content": "<div id=app></div>" },
        { "path": "docs/index.html", "content": "<h1>docs</h1>" },
        { "path": "logo.svg", "content": "<svg xmlns=\"http://www.w3.org/2000/svg\"/>" },
        { "path": "img/dot.png", "content": "iVBORw0KGgo=", "encoding": "base64" },
    ]);
    let project = unique("routes");
    let id = app.submit(&build_body("u_p", &project, files)).await;
    let build: Value = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");

    let res = app.preview(&id, "/").await;
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(res.text().await.unwrap(), "<div id=app></div>");
    let again = app
        .client
        .get(format!("http://127.0.0.1:{}/", app.preview_port))
        .header("Host", format!("{id}.localhost"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    assert_eq!(
        app.preview(&id, "/docs/").await.text().await.unwrap(),
        "<h1>docs</h1>"
    );
    assert_eq!(
        app.preview(&id, "/docs").await.text().await.unwrap(),
        "<h1>docs</h1>"
    );
    assert_eq!(
        app.preview(&id, "/settings/profile").await.text().await.unwrap(),
        "<div id=app></div>"
    );
    assert_eq!(
        app.preview(&id, "/logo.svg").await.headers()["content-type"],
        "image/svg+xml; charset=utf-8"
    );
    let png = app.preview(&id, "/img/dot.png").await;
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(
        png.bytes().await.unwrap().as_ref(),
        &[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]
    );
    assert_eq!(app.preview(&id, "/missing.js").await.status(), 404);
    // ULIDs are accepted in either case.
    assert_eq!(app.preview(&id.to_uppercase(), "/").await.status(), 200);

    // The latest URL revalidates.
    let latest = build["latestUrl"].as_str().unwrap();
    let label = latest.trim_start_matches("http://").split('.').next().unwrap();
    let res = app.preview(label, "/").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-cache");
    assert_eq!(res.headers()["x-kiln-version"], id.as_str());

    // Unknown hosts, unknown versions and unknown labels are 404.
    assert_eq!(
        app.preview(&ulid::Ulid::new().to_string(), "/").await.status(),
        404
    );
    assert_eq!(app.preview("nobody-0123456789ab", "/").await.status(), 404);
    let res = app
        .client
        .get(format!("http://127.0.0.1:{}/", app.preview_port))
        .header("Host", "example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_queued_version_is_not_served() {
    let app = spawn_app(Options::without_builders()).await;
    let id = app
        .submit(&build_body(
            "u_q",
            "p",
            json!([{ "path": "index.html", "content": "x" }]),
        ))
        .await;
    let res = app.preview(&id, "/").await;
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("is not deployed"));
}
