//! A project's resource (`GET`/`PATCH`) and private previews: 401 without a share, share links
//! and their cookie, version-scoped links, revocation, expiry, `X-Robots-Tag: noindex`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options, TestApp};

/// A GET on the preview listener that does not follow redirects, with a cookie if given.
async fn open(app: &TestApp, label: &str, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client
        .get(format!("http://127.0.0.1:{}{path}", app.preview_port))
        .header("Host", format!("{label}.localhost:{}", app.preview_port));
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    req.send().await.unwrap()
}

fn noindex(res: &reqwest::Response) -> bool {
    res.headers().get("x-robots-tag").is_some_and(|v| v == "noindex")
}

/// Asserts the private page: 401, HTML, noindex, not stored by caches.
async fn assert_private(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), 401, "{what}");
    assert!(noindex(&res), "{what}: {:?}", res.headers());
    assert_eq!(
        res.headers()["content-type"],
        "text/html; charset=utf-8",
        "{what}"
    );
    assert_eq!(res.headers()["cache-control"], "no-store", "{what}");
    let page = res.text().await.unwrap();
    assert!(page.contains("This preview is private"), "{what}: {page}");
    assert!(page.contains("share link"), "{what}: {page}");
}

/// The host label and path-and-query of a preview URL.
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    (host.split('.').next().unwrap().to_owned(), format!("/{path}"))
}

/// Uses a share URL: the 302 and the cookie it sets (`name=value`), checking its attributes.
async fn use_link(app: &TestApp, url: &str) -> (String, String) {
    let (label, path) = split_url(url);
    let res = open(app, &label, &path, None).await;
    assert_eq!(res.status(), 302, "{url}");
    assert!(noindex(&res));
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(!set.contains("Secure"), "no Secure over http: {set}");
    assert!(!set.contains("Domain"), "the cookie is the host's only: {set}");
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(!location.contains("kiln_share"), "{location}");
    (set.split(';').next().unwrap().to_owned(), location)
}

async fn deploy(app: &TestApp, user: &str, project: &str, text: &str) -> String {
    let files = json!([
        { "path": "index.html", "content": format!("<h1>{text}</h1>") },
        { "path": "app.js", "content": "console.log(1)\n".repeat(20) },
    ]);
    let id = app.submit(&build_body(user, project, files)).await;
    let build: Value = app.build_one(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    id
}

async fn share(app: &TestApp, user: &str, project: &str, body: Value) -> Value {
    let (status, link) = app
        .send_json(
            "POST",
            &format!("/v1/projects/{user}/{project}/share-links"),
            &body,
        )
        .await;
    assert_eq!(status, 201, "{link}");
    link
}

#[tokio::test]
async fn private_previews_open_only_with_a_share_link() {
    let app = spawn_app(Options::without_builders()).await;
    let (user, project) = ("u_private", unique("private"));
    let v1 = deploy(&app, user, &project, "one").await;
    let v2 = deploy(&app, user, &project, "two").await;
    let project_path = format!("/v1/projects/{user}/{project}");
    let latest_url = app.get_json(&project_path).await["latestUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let (latest, _) = split_url(&latest_url);

    // Public: served, and never indexed.
    let res = open(&app, &latest, "/", None).await;
    assert_eq!(res.status(), 200);
    assert!(noindex(&res));
    assert_eq!(res.headers()["cache-control"], "no-cache");
    assert!(noindex(&open(&app, &v1, "/", None).await));
    let missing = open(&app, &v1, "/missing.js", None).await;
    assert_eq!(missing.status(), 404);
    assert!(noindex(&missing));

    // Private: the version and latest hosts answer the private page.
    let (status, saved) = app
        .send_json("PATCH", &project_path, &json!({ "previewAccess": "private" }))
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["settings"]["previewAccess"], "private");
    assert_private(open(&app, &latest, "/", None).await, "latest").await;
    assert_private(open(&app, &v1, "/", None).await, "version").await;
    assert_private(open(&app, &v2, "/app.js", None).await, "a file").await;
    assert_private(open(&app, &v2, "/missing.js", None).await, "a missing file").await;

    // A project-wide link: the latest URL with a token; its first use sets the cookie and
    // redirects without the token (other parameters kept); the cookie opens the previews.
    let link = share(&app, user, &project, json!({ "ttlSecs": 600 })).await;
    let url = link["url"].as_str().unwrap();
    assert!(url.starts_with(&latest_url), "{url}");
    let expires: chrono::DateTime<chrono::Utc> = link["expiresAt"].as_str().unwrap().parse().unwrap();
    let left = expires - chrono::Utc::now();
    assert!(
        left > chrono::Duration::seconds(590) && left <= chrono::Duration::seconds(601),
        "{left}"
    );
    let (cookie, location) = use_link(&app, &url.replace("/?", "/docs?a=1&")).await;
    assert_eq!(location, "/docs?a=1");
    // The redirect stays on the preview host, whatever the path looks like.
    let (_, location) = use_link(&app, &url.replace("/?", "//evil.example/x?")).await;
    assert_eq!(location, "/evil.example/x");
    let res = open(&app, &latest, "/", Some(&cookie)).await;
    assert_eq!(res.status(), 200);
    assert!(noindex(&res));
    assert_eq!(res.headers()["cache-control"], "private, no-cache");
    assert_eq!(res.text().await.unwrap(), "<h1>two</h1>");
    // Conditional and ranged requests go through the same gate.
    let res = open(&app, &latest, "/app.js", Some(&cookie)).await;
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let client = reqwest::Client::new();
    let again = client
        .get(format!("http://127.0.0.1:{}/app.js", app.preview_port))
        .header("Host", format!("{latest}.localhost"))
        .header("Cookie", &cookie)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(noindex(&again));
    let part = client
        .get(format!("http://127.0.0.1:{}/app.js", app.preview_port))
        .header("Host", format!("{latest}.localhost"))
        .header("Cookie", &cookie)
        .header("Range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert!(noindex(&part));
    let no_cookie = client
        .get(format!("http://127.0.0.1:{}/app.js", app.preview_port))
        .header("Host", format!("{latest}.localhost"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(no_cookie.status(), 401, "a 304 needs a share too");
    // A project-wide token opens every version's host.
    assert_eq!(open(&app, &v1, "/", Some(&cookie)).await.status(), 200);

    // A link to one version opens that version's host only.
    let scoped = share(&app, user, &project, json!({ "versionId": v1, "ttlSecs": 600 })).await;
    let scoped_url = scoped["url"].as_str().unwrap();
    assert!(
        scoped_url.starts_with(&format!("http://{v1}.localhost")),
        "{scoped_url}"
    );
    let (_, query) = split_url(scoped_url);
    assert_private(open(&app, &v2, &query, None).await, "a v1 link on v2").await;
    assert_private(open(&app, &latest, &query, None).await, "a v1 link on latest").await;
    let (v1_cookie, location) = use_link(&app, scoped_url).await;
    assert_eq!(location, "/");
    assert_eq!(open(&app, &v1, "/", Some(&v1_cookie)).await.status(), 200);
    assert_private(open(&app, &v2, "/", Some(&v1_cookie)).await, "a v1 cookie on v2").await;
    assert_private(
        open(&app, &latest, "/", Some(&v1_cookie)).await,
        "a v1 cookie on latest",
    )
    .await;

    // Tampered tokens, and another project's.
    let token = cookie.split_once('=').unwrap().1.to_owned();
    let (payload, tag) = token.split_once('.').unwrap();
    let flipped = format!(
        "{payload}.{}{}",
        if tag.starts_with('A') { "B" } else { "A" },
        &tag[1..]
    );
    assert_private(
        open(&app, &latest, "/", Some(&format!("kiln_share={flipped}"))).await,
        "tampered",
    )
    .await;
    assert_private(
        open(&app, &latest, &format!("/?kiln_share={flipped}"), None).await,
        "tampered link",
    )
    .await;
    assert_private(open(&app, &latest, "/?kiln_share=", None).await, "empty token").await;
    let other = unique("private-other");
    deploy(&app, user, &other, "other").await;
    let (status, _) = app
        .send_json(
            "PATCH",
            &format!("/v1/projects/{user}/{other}"),
            &json!({ "previewAccess": "private" }),
        )
        .await;
    assert_eq!(status, 200);
    let foreign = share(&app, user, &other, json!({ "ttlSecs": 600 })).await;
    let (_, foreign_query) = split_url(foreign["url"].as_str().unwrap());
    assert_private(
        open(&app, &latest, &foreign_query, None).await,
        "another project's link",
    )
    .await;

    // An expired link.
    let short = share(&app, user, &project, json!({ "ttlSecs": 1 })).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, short_query) = split_url(short["url"].as_str().unwrap());
    assert_private(open(&app, &latest, &short_query, None).await, "an expired link").await;

    // Revoking: every link and cookie of the project stops at once; new links work.
    let (status, revoked) = app
        .send_json("DELETE", &format!("{project_path}/share-links"), &json!(null))
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["projectId"], project.as_str());
    assert_private(open(&app, &latest, "/", Some(&cookie)).await, "a revoked cookie").await;
    assert_private(
        open(&app, &v1, "/", Some(&v1_cookie)).await,
        "a revoked v1 cookie",
    )
    .await;
    let (_, old_query) = split_url(url);
    assert_private(open(&app, &latest, &old_query, None).await, "a revoked link").await;
    let fresh = share(&app, user, &project, json!({ "ttlSecs": 60 })).await;
    let (fresh_cookie, _) = use_link(&app, fresh["url"].as_str().unwrap()).await;
    assert_eq!(open(&app, &latest, "/", Some(&fresh_cookie)).await.status(), 200);

    // Public again: served without a share; a token is ignored (served, no redirect).
    let (status, _) = app
        .send_json("PATCH", &project_path, &json!({ "previewAccess": null }))
        .await;
    assert_eq!(status, 200);
    let res = open(&app, &latest, "/", None).await;
    assert_eq!(res.status(), 200);
    assert!(noindex(&res));
    assert_eq!(res.headers()["cache-control"], "no-cache");
    assert_eq!(open(&app, &latest, &old_query, None).await.status(), 200);
    assert_eq!(
        open(&app, &v1, "/", None).await.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );

    // Indexable: no noindex on any answer.
    let (status, _) = app
        .send_json("PATCH", &project_path, &json!({ "indexable": true }))
        .await;
    assert_eq!(status, 200);
    for (label, path, status) in [(&latest, "/", 200), (&v1, "/", 200), (&v1, "/missing.js", 404)] {
        let res = open(&app, label, path, None).await;
        assert_eq!(res.status(), status, "{label}{path}");
        assert!(res.headers().get("x-robots-tag").is_none(), "{label}{path}");
    }
    // Another project, not indexable, still says noindex.
    let other_v = other_version(&app, user, &other).await;
    assert_private(open(&app, &other_v, "/", None).await, "another project").await;

    // Hosts of no project are 404 (with noindex).
    for label in [ulid::Ulid::new().to_string(), "nobody-0123456789ab".to_owned()] {
        let res = open(&app, &label, "/", None).await;
        assert_eq!(res.status(), 404, "{label}");
        assert!(noindex(&res));
    }
    // A project whose row is gone (as a deletion leaves it) answers 404 at once, on its
    // version and latest hosts, though its versions are still there.
    sqlx::query("delete from projects where user_id = $1 and project_id = $2")
        .bind(user)
        .bind(&project)
        .execute(&app.db)
        .await
        .unwrap();
    // What a deletion does in Redis: the cached gate gone, every instance told to drop its own
    // copy (one arrives by Pub/Sub, so the first answer is awaited).
    let (mut redis, keys) = app.redis().await;
    let _: () = redis::AsyncCommands::del(&mut redis, keys.project(user, &project))
        .await
        .unwrap();
    let _: () =
        redis::AsyncCommands::publish(&mut redis, keys.project_changes(), format!("{user}/{project}"))
            .await
            .unwrap();
    let started = std::time::Instant::now();
    while open(&app, &v1, "/", None).await.status() != 404 && started.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for label in [&latest, &v1, &v2] {
        let res = open(&app, label, "/", None).await;
        assert_eq!(res.status(), 404, "{label}");
        assert!(noindex(&res));
    }
}

/// The latest version of a project (its id is its version host's label).
async fn other_version(app: &TestApp, user: &str, project: &str) -> String {
    app.get_json(&format!("/v1/projects/{user}/{project}")).await["latestVersionId"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_project_is_read_and_its_settings_changed() {
    let app = spawn_app(Options::without_builders()).await;
    let (user, project) = ("u_settings", unique("settings"));
    let path = format!("/v1/projects/{user}/{project}");
    let res = app.get(&path).await;
    assert_eq!(res.status(), 404);

    let id = app
        .submit(&build_body(
            user,
            &project,
            json!([{ "path": "index.html", "content": "x" }]),
        ))
        .await;
    sqlx::query("insert into project_env (user_id, project_id, name, secret, value) values ($1, $2, 'API_URL', false, 'https://example.test')")
        .bind(user)
        .bind(&project)
        .execute(&app.db)
        .await
        .unwrap();
    let got = app.get_json(&path).await;
    assert_eq!(got["userId"], user);
    assert_eq!(got["projectId"], project.as_str());
    assert_eq!(got["settings"], json!({}));
    assert_eq!(got["versions"], 1);
    assert_eq!(got["lastBuild"]["id"], id.as_str());
    assert_eq!(got["lastBuild"]["status"], "queued");
    assert_eq!(got["latestVersionId"], Value::Null);
    assert!(got["latestUrl"].as_str().unwrap().starts_with("http://"));
    assert_eq!(got["env"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got["env"][0]["name"], "API_URL");
    assert_eq!(got["env"][0]["secret"], false);
    assert!(got["env"][0].get("value").is_none(), "names only: {got}");
    assert!(!got.to_string().contains("example.test"), "{got}");

    let (status, saved) = app
        .send_json(
            "PATCH",
            &path,
            &json!({ "buildCommand": "pnpm run build:prod", "outputDir": "public/", "checks": { "typecheck": "warn" } }),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["settings"]["buildCommand"], "pnpm run build:prod");
    assert_eq!(saved["settings"]["outputDir"], "public");
    assert_eq!(saved["settings"]["checks"]["typecheck"], "warn");
    assert_eq!(app.get_json(&path).await["settings"], saved["settings"]);
    let (status, reset) = app
        .send_json("PATCH", &path, &json!({ "buildCommand": null }))
        .await;
    assert_eq!(status, 200);
    assert!(reset["settings"].get("buildCommand").is_none(), "{reset}");
    assert_eq!(reset["settings"]["outputDir"], "public");

    for (body, says) in [
        (json!({ "colour": "red" }), "colour is not a setting"),
        (json!({ "buildCommand": "x".repeat(1025) }), "at most 1024 bytes"),
        (
            json!({ "previewAccess": "secret" }),
            "previewAccess must be \"public\" or \"private\"",
        ),
    ] {
        let (status, problem) = app.send_json("PATCH", &path, &body).await;
        assert_eq!(status, 422, "{problem}");
        assert!(problem["error"].as_str().unwrap().contains(says), "{problem}");
    }
    assert_eq!(
        app.get_json(&path).await["settings"],
        reset["settings"],
        "refused changes change nothing"
    );

    // A user token sees its own user's project only; another user's is a 404.
    let (status, own) = app
        .send_json("POST", "/v1/tokens", &json!({ "userId": user }))
        .await;
    assert_eq!(status, 201);
    let (status, other) = app
        .send_json("POST", "/v1/tokens", &json!({ "userId": "u_else" }))
        .await;
    assert_eq!(status, 201);
    let as_user = |token: &Value, method: reqwest::Method| {
        app.client
            .request(method, format!("{}{path}", app.api))
            .bearer_auth(token["token"].as_str().unwrap())
            .header("content-type", "application/json")
    };
    let res = as_user(&own, reqwest::Method::GET).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = as_user(&other, reqwest::Method::GET).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = as_user(&other, reqwest::Method::PATCH)
        .body(r#"{"previewAccess":"public"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = as_user(&own, reqwest::Method::PATCH)
        .body(r#"{"indexable":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let saved: Value = res.json().await.unwrap();
    assert_eq!(saved["settings"]["indexable"], true);
}

/// Every API instance keeps its own copy of a public project's gate (serving a public preview
/// asks Redis nothing); a change made through another instance reaches it at once, by Pub/Sub:
/// made private, it answers 401; public again, 200; deleted, 404.
#[tokio::test]
async fn a_change_made_through_one_instance_reaches_every_other_at_once() {
    let app = spawn_app(Options::without_builders()).await;
    let other = kiln_api::Application::build(app.settings.clone()).await.unwrap();
    let other_preview = other.preview_port();
    tokio::spawn(other.run_until_stopped());
    let get = |label: String| async move {
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{other_preview}/"))
            .header("Host", format!("{label}.localhost:{other_preview}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    // The status the other instance answers, once it answers `want` (within a second).
    let soon = |label: String, want: u16| async move {
        let started = std::time::Instant::now();
        loop {
            let status = get(label.clone()).await;
            if status == want || started.elapsed() > Duration::from_secs(1) {
                return (status, started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (user, project) = ("u_near", unique("near"));
    let id = deploy(&app, user, &project, "near").await;
    // Served (and its public gate kept) by the other instance.
    for _ in 0..3 {
        assert_eq!(get(id.clone()).await, 200);
    }
    let path = format!("/v1/projects/{user}/{project}");
    let (status, _) = app
        .send_json("PATCH", &path, &json!({"previewAccess": "private"}))
        .await;
    assert_eq!(status, 200);
    let (status, took) = soon(id.clone(), 401).await;
    assert_eq!(
        status, 401,
        "still served {took:?} after the project was made private"
    );
    let (status, _) = app
        .send_json("PATCH", &path, &json!({"previewAccess": "public"}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(soon(id.clone(), 200).await.0, 200);
    assert_eq!(get(id.clone()).await, 200);
    let (status, _) = app.send_json("DELETE", &path, &json!(null)).await;
    assert_eq!(status, 202);
    let (status, took) = soon(id.clone(), 404).await;
    assert_eq!(status, 404, "still served {took:?} after the project was deleted");
}
