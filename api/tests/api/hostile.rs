//! Hostile input: each case is a 4xx with a message that says what is wrong, and nothing is
//! stored or queued.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, Options};

fn one(path: &str) -> Value {
    json!({ "userId": "u", "projectId": "p", "files": [{ "path": path, "content": "x" }] })
}

#[tokio::test]
async fn hostile_requests_get_a_clear_4xx_and_nothing_is_stored() {
    let app = spawn_app(Options::without_builders()).await;
    let many: Vec<Value> = (0..5001)
        .map(|i| json!({ "path": format!("f{i}.txt"), "content": "" }))
        .collect();
    let big = "a".repeat(10 * 1024 * 1024 + 1);
    let unknown_base = ulid::Ulid::new().to_string();
    let cases: Vec<(&str, Value, u16, String)> = vec![
        ("dot-dot", one("../../etc/passwd"), 422, "contains a '..'".into()),
        ("inner dot-dot", one("src/../../x"), 422, "contains a '..'".into()),
        ("absolute", one("/etc/passwd"), 422, "is absolute".into()),
        ("backslash", one("src\\app.js"), 422, "backslash".into()),
        ("nul", one("a\u{0}b"), 422, "NUL".into()),
        ("empty path", one(""), 422, "path is empty".into()),
        (
            "long path",
            one(&"a/".repeat(300)),
            422,
            "longer than 512 bytes".into(),
        ),
        (
            "too many files",
            json!({ "userId": "u", "projectId": "p", "files": many }),
            422,
            "5001 files given; the limit is 5000".into(),
        ),
        (
            "huge file",
            json!({ "userId": "u", "projectId": "p", "files": [{ "path": "big.txt", "content": big }] }),
            422,
            "the limit is 10485760 bytes per file".into(),
        ),
        (
            "bad base64",
            json!({ "userId": "u", "projectId": "p", "files": [{ "path": "a.png", "content": "%%%", "encoding": "base64" }] }),
            422,
            "not valid base64".into(),
        ),
        (
            "duplicate",
            json!({ "userId": "u", "projectId": "p", "files": [{ "path": "a", "content": "1" }, { "path": "a", "content": "2" }] }),
            422,
            "given twice".into(),
        ),
        (
            "missing userId",
            json!({ "projectId": "p", "files": [] }),
            422,
            "userId is required".into(),
        ),
        (
            "malformed userId",
            json!({ "userId": "u 1", "projectId": "p", "files": [] }),
            422,
            "userId must be".into(),
        ),
        (
            "malformed projectId",
            json!({ "userId": "u", "projectId": "p/../q", "files": [] }),
            422,
            "projectId must be".into(),
        ),
        (
            "long projectId",
            json!({ "userId": "u", "projectId": "p".repeat(65), "files": [] }),
            422,
            "projectId must be".into(),
        ),
        (
            "malformed base",
            json!({ "userId": "u", "projectId": "p", "baseVersionId": "v3", "files": [] }),
            422,
            "baseVersionId is not a valid id".into(),
        ),
        (
            "unknown base",
            json!({ "userId": "u", "projectId": "p", "baseVersionId": unknown_base, "files": [] }),
            422,
            "is not a version of project u/p".into(),
        ),
        (
            "no files",
            json!({ "userId": "u", "projectId": "p" }),
            422,
            "a first build needs the project's files".into(),
        ),
        (
            "prompt only, no generator",
            json!({ "userId": "u", "projectId": "p", "prompt": "a site" }),
            422,
            "no generator configured".into(),
        ),
        (
            "deleted without base",
            json!({ "userId": "u", "projectId": "p", "files": [{ "path": "a", "content": "1" }], "deleted": ["b"] }),
            422,
            "deleted needs a base version".into(),
        ),
        (
            "bad deleted path",
            json!({ "userId": "u", "projectId": "p", "deleted": ["../x"] }),
            422,
            "deleted: path".into(),
        ),
        (
            "bad encoding",
            json!({ "userId": "u", "projectId": "p", "files": [{ "path": "a", "content": "1", "encoding": "rot13" }] }),
            400,
            "invalid JSON: unknown variant `rot13`".into(),
        ),
        (
            "wrong type",
            json!({ "userId": 42, "projectId": "p" }),
            400,
            "invalid JSON: invalid type".into(),
        ),
        (
            "bad framework",
            json!({ "userId": "u", "projectId": "p", "framework": "<script>", "files": [] }),
            422,
            "framework must be".into(),
        ),
    ];
    for (name, body, status, message) in cases {
        let res = app.post_build(&body).await;
        assert_eq!(res.status().as_u16(), status, "{name}");
        let json: Value = res
            .json()
            .await
            .unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
        let error = json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no error in {json}"));
        assert!(
            error.contains(&message),
            "{name}: {error:?} does not say {message:?}"
        );
    }

    for (name, raw, status, message) in [
        ("invalid JSON", b"{\"userId\": ".to_vec(), 400, "invalid JSON"),
        ("not JSON", b"userId=u".to_vec(), 400, "invalid JSON"),
        ("empty body", Vec::new(), 400, "the request body is empty"),
    ] {
        let res = app.signed("POST", "/v1/builds", &raw).await;
        assert_eq!(res.status().as_u16(), status, "{name}");
        let json: Value = res.json().await.unwrap();
        assert!(
            json["error"].as_str().unwrap().contains(message),
            "{name}: {json}"
        );
    }

    // Over the 50 MB body cap: 413 before the body is read.
    let huge = vec![b' '; 50 * 1024 * 1024 + 1];
    let res = app.signed("POST", "/v1/builds", &huge).await;
    assert_eq!(res.status(), 413);
    let json: Value = res.json().await.unwrap();
    assert_eq!(json["error"], "the request body is larger than 50 MB");

    assert_eq!(app.version_count().await, 0, "no version was recorded");
    assert_eq!(app.queue_depth().await, 0, "nothing was queued");
    assert_eq!(app.blob_count(), 0, "no blob was stored");
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
    assert_eq!(app.get("/v1/builds?before=zzz").await.status(), 400);
    assert_eq!(app.get("/v1/builds?colour=blue").await.status(), 400);
    assert_eq!(app.get("/v1/nothing-here").await.status(), 404);
}
