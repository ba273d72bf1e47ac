//! The preview server: host routing, content types, SPA fallback, caching, compression.

use std::io::Read;

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options};

#[tokio::test]
async fn previews_route_by_host_and_fall_back_for_client_routes() {
    let app = spawn_app(Options::without_builders()).await;
    let files = json!([
        { "path": "index.html", "content": "<div id=app></div>" },
        { "path": "docs/index.html", "content": "<h1>docs</h1>" },
        { "path": "logo.svg", "content": "<svg xmlns=\"http://www.w3.org/2000/svg\"/>" },
        { "path": "img/dot.png", "content": "iVBORw0KGgo=", "encoding": "base64" },
    ]);
    let project = unique("routes");
    let id = app.submit(&build_body("u_p", &project, files)).await;
    let build: Value = app.build_one(&id).await;
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

#[tokio::test]
async fn a_file_stored_compressed_is_sent_gzip_to_clients_that_accept_it_and_whole_to_others() {
    let app = spawn_app(Options::without_builders()).await;
    let js: String = (0..2000)
        .map(|i| format!("export const v{i} = \"value {i}\";\n"))
        .collect();
    let project = unique("gzip");
    let files = json!([
        { "path": "index.html", "content": "<script src=/app.js></script>" },
        { "path": "app.js", "content": js },
    ]);
    let id = app.submit(&build_body("u_gz", &project, files)).await;
    let build: Value = app.build_one(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");

    // At rest: one object, `<hash>.gz`, far smaller than the file.
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(js.as_bytes()));
    let dir = app
        .artifacts_dir
        .as_ref()
        .unwrap()
        .join("blobs/sha256")
        .join(&hash[..2]);
    let stored = std::fs::metadata(dir.join(format!("{hash}.gz"))).expect("stored compressed");
    assert!(
        stored.len() * 5 < js.len() as u64,
        "{} of {} bytes",
        stored.len(),
        js.len()
    );
    assert!(!dir.join(&hash).exists(), "and not also as it is");

    let get = |accept: Option<&'static str>, etag: Option<String>| {
        let mut req = app
            .client
            .get(format!("http://127.0.0.1:{}/app.js", app.preview_port))
            .header("Host", format!("{id}.localhost"));
        if let Some(a) = accept {
            req = req.header("Accept-Encoding", a);
        }
        if let Some(e) = etag {
            req = req.header("If-None-Match", e);
        }
        req.send()
    };

    // A browser: the stored bytes as they are, said to be gzip.
    let res = get(Some("gzip, deflate, br"), None).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    assert_eq!(res.headers()["vary"], "Accept-Encoding");
    assert_eq!(res.headers()["content-type"], "text/javascript; charset=utf-8");
    let gz_etag = res.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(gz_etag, format!("\"{hash}.gz\""));
    let body = res.bytes().await.unwrap();
    assert_eq!(body.len() as u64, stored.len());
    let mut inflated = String::new();
    flate2::read::GzDecoder::new(body.as_ref())
        .read_to_string(&mut inflated)
        .unwrap();
    assert_eq!(inflated, js);

    // A client that does not accept gzip (or refuses it): the file itself, another tag.
    for accept in [None, Some("identity"), Some("gzip;q=0, *")] {
        let res = get(accept, None).await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("content-encoding").is_none(), "{accept:?}");
        assert_eq!(res.headers()["vary"], "Accept-Encoding");
        assert_eq!(res.headers()["etag"].to_str().unwrap(), format!("\"{hash}\""));
        assert_eq!(res.text().await.unwrap(), js);
    }

    // Revalidation matches the form asked for.
    let res = get(Some("gzip"), Some(gz_etag.clone())).await.unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(res.headers()["vary"], "Accept-Encoding");
    assert_eq!(get(None, Some(gz_etag)).await.unwrap().status(), 200);

    // A small file is neither stored nor sent compressed, and does not vary.
    let res = get_index(&app, &id).await;
    assert!(res.headers().get("content-encoding").is_none());
    assert!(res.headers().get("vary").is_none());

    // The source file route sends the same forms.
    let url = format!(
        "{}/v1/projects/u_gz/{project}/versions/{id}/files/app.js",
        app.api
    );
    let res = app
        .client
        .get(&url)
        .bearer_auth(crate::helpers::TOKEN)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    assert_eq!(res.bytes().await.unwrap().len() as u64, stored.len());
    assert_eq!(
        app.get(&format!("/v1/projects/u_gz/{project}/versions/{id}/files/app.js"))
            .await
            .text()
            .await
            .unwrap(),
        js
    );
}

async fn get_index(app: &crate::helpers::TestApp, id: &str) -> reqwest::Response {
    app.client
        .get(format!("http://127.0.0.1:{}/", app.preview_port))
        .header("Host", format!("{id}.localhost"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap()
}

/// What a `<video>` in Safari, a shared cache and a stray form post need of the preview
/// listener: byte ranges (206/416, `If-Range`), `If-None-Match` lists and weak tags, HEAD, and a
/// 405 naming `GET, HEAD` for any other method.
#[tokio::test]
async fn previews_answer_ranges_conditional_requests_and_only_get_and_head() {
    let app = spawn_app(Options::without_builders()).await;
    // Compressible, so it is stored gzip: a range is still taken of the content.
    let js: String = (0..2000)
        .map(|i| format!("export const v{i} = \"value {i}\";\n"))
        .collect();
    let project = unique("ranges");
    let files = json!([
        { "path": "index.html", "content": "<video src=/app.js></video>" },
        { "path": "app.js", "content": js },
    ]);
    let id = app.submit(&build_body("u_rg", &project, files)).await;
    let build: Value = app.build_one(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(js.as_bytes()));
    let url = format!("http://127.0.0.1:{}/app.js", app.preview_port);
    let request = |method: reqwest::Method, headers: &[(&str, &str)]| {
        let mut req = app
            .client
            .request(method, &url)
            .header("Host", format!("{id}.localhost"))
            .header("Accept-Encoding", "gzip");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    let get = |headers: &'static [(&'static str, &'static str)]| request(reqwest::Method::GET, headers);

    // Whole answers say ranges are accepted.
    let whole = get(&[]).await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");

    // One range: 206, the content's bytes (never the gzip stream), Content-Range with the length.
    let len = js.len();
    let res = get(&[("Range", "bytes=0-99")]).await.unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 0-99/{len}").as_str()
    );
    assert!(res.headers().get("content-encoding").is_none());
    assert_eq!(res.headers()["etag"], format!("\"{hash}\"").as_str());
    assert_eq!(res.headers()["content-length"], "100");
    assert_eq!(res.text().await.unwrap(), &js[..100]);
    let res = get(&[("Range", "bytes=-10")]).await.unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.text().await.unwrap(), &js[len - 10..]);
    let res = get(&[("Range", "bytes=100-")]).await.unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.text().await.unwrap(), &js[100..]);

    // A range past the end: 416 with the length, as a problem.
    let res = request(reqwest::Method::GET, &[("Range", &format!("bytes={len}-"))])
        .await
        .unwrap();
    assert_eq!(res.status(), 416);
    assert_eq!(res.headers()["content-range"], format!("bytes */{len}").as_str());
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["type"], "urn:kiln:problem:range_not_satisfiable");

    // If-Range: the current tag gets the range, a stale one the whole (new) file.
    let current = format!("\"{hash}\"");
    let res = request(
        reqwest::Method::GET,
        &[("Range", "bytes=0-9"), ("If-Range", &current)],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 206);
    let res = get(&[("Range", "bytes=0-9"), ("If-Range", "\"stale\"")])
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    // Several ranges get the whole file.
    assert_eq!(get(&[("Range", "bytes=0-1, 5-6")]).await.unwrap().status(), 200);

    // If-None-Match: a list, weak tags and `*` match; none of them → 200.
    let gz = format!("\"{hash}.gz\"");
    for header in [format!("\"other\", {gz}"), format!("W/{gz}"), "*".to_owned()] {
        let res = request(reqwest::Method::GET, &[("If-None-Match", &header)])
            .await
            .unwrap();
        assert_eq!(res.status(), 304, "{header}");
    }
    assert_eq!(
        get(&[("If-None-Match", "\"other\", W/\"x\"")])
            .await
            .unwrap()
            .status(),
        200
    );

    // HEAD: the headers of a GET, no body.
    let res = request(reqwest::Method::HEAD, &[]).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], gz.as_str());
    assert!(res.bytes().await.unwrap().is_empty());

    // Any other method: 405 with Allow, and nothing served.
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
        reqwest::Method::OPTIONS,
    ] {
        let res = request(method.clone(), &[]).await.unwrap();
        assert_eq!(res.status(), 405, "{method}");
        assert_eq!(res.headers()["allow"], "GET, HEAD", "{method}");
        assert!(res.headers().get("etag").is_none(), "{method}");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(problem["type"], "urn:kiln:problem:method_not_allowed", "{method}");
    }
}
