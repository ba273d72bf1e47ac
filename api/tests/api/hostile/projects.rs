//! A project's routes: settings changes (`PATCH`) and share links (`POST .../share-links`)
//! with bad members, sizes, durations and versions; none changes the project's row.

use serde_json::json;

use super::table::{assert_healthy, case, refuse_all, stored};
use super::wire::signed;
use crate::helpers::{build_body, spawn_app, unique, Options};

#[tokio::test]
async fn bad_settings_and_share_links_are_refused() {
    let app = spawn_app(Options::without_builders()).await;
    let project = unique("hostile-project");
    let other = unique("hostile-other");
    let site = json!([{ "path": "index.html", "content": "x" }]);
    let id = app.submit(&build_body("u", &project, site.clone())).await;
    let foreign = app.submit(&build_body("u", &other, site)).await;
    let path = format!("/v1/projects/u/{project}");
    let shares = format!("{path}/share-links");
    let missing = ulid::Ulid::new().to_string();
    let mut cases = Vec::new();
    for (name, body, status, says) in [
        (
            "unknown member",
            r#"{"colour":"red"}"#.to_owned(),
            422,
            "colour is not a setting",
        ),
        (
            "oversize command",
            json!({ "buildCommand": "x".repeat(1025) }).to_string(),
            422,
            "a command is at most 1024 bytes",
        ),
        (
            "two-line command",
            json!({ "installCommand": "a\nrm -rf /" }).to_string(),
            422,
            "must be one line",
        ),
        (
            "command 42",
            r#"{"buildCommand":42}"#.into(),
            422,
            "must be a string",
        ),
        (
            "outputDir ../",
            r#"{"outputDir":"../../etc"}"#.into(),
            422,
            "outputDir: ",
        ),
        (
            "rootDir absolute",
            r#"{"rootDir":"/etc"}"#.into(),
            422,
            "rootDir: ",
        ),
        (
            "previewAccess open",
            r#"{"previewAccess":"open"}"#.into(),
            422,
            "previewAccess must be \"public\" or \"private\"",
        ),
        (
            "indexable yes",
            r#"{"indexable":"yes"}"#.into(),
            422,
            "indexable must be true or false",
        ),
        (
            "checks loud",
            r#"{"checks":{"lint":"loud"}}"#.into(),
            422,
            "checks.lint must be",
        ),
        ("array", "[]".into(), 400, "must be a JSON object, not an array"),
        ("not JSON", "previewAccess=private".into(), 400, "invalid JSON"),
        ("empty", String::new(), 400, "the request body is empty"),
    ] {
        cases.push(case(
            format!("PATCH: {name}"),
            signed("PATCH", path.clone(), body),
            status,
            says,
        ));
    }
    for (name, body, status, says) in [
        ("no ttl", "{}".to_owned(), 422, "ttlSecs is required"),
        (
            "ttl 0",
            r#"{"ttlSecs":0}"#.into(),
            422,
            "ttlSecs must be between 1 and 2592000",
        ),
        (
            "ttl -1",
            r#"{"ttlSecs":-1}"#.into(),
            422,
            "ttlSecs must be between 1 and 2592000",
        ),
        (
            "ttl 31 days",
            r#"{"ttlSecs":2678400}"#.into(),
            422,
            "ttlSecs must be between 1 and 2592000",
        ),
        (
            "ttl text",
            r#"{"ttlSecs":"7d"}"#.into(),
            400,
            "invalid type: string",
        ),
        (
            "ttl huge",
            r#"{"ttlSecs":1e300}"#.into(),
            400,
            "invalid type: floating point",
        ),
        (
            "versionId ../",
            r#"{"ttlSecs":60,"versionId":"../../x"}"#.into(),
            422,
            "versionId is not a valid id",
        ),
        (
            "versionId unknown",
            format!(r#"{{"ttlSecs":60,"versionId":"{missing}"}}"#),
            422,
            "is not a version of u/",
        ),
        (
            "versionId of another project",
            format!(r#"{{"ttlSecs":60,"versionId":"{foreign}"}}"#),
            422,
            "is not a version of u/",
        ),
        (
            "unknown field",
            format!(r#"{{"ttlSecs":60,"versionId":"{id}","forever":true}}"#),
            400,
            "unknown field `forever`",
        ),
        (
            "ttl twice",
            r#"{"ttlSecs":60,"ttlSecs":2592000}"#.into(),
            400,
            "duplicate field `ttlSecs`",
        ),
    ] {
        cases.push(case(
            format!("share: {name}"),
            signed("POST", shares.clone(), body),
            status,
            says,
        ));
    }
    cases.push(case(
        "share a project that has no row",
        signed(
            "POST",
            "/v1/projects/u/never-made/share-links",
            r#"{"ttlSecs":60}"#,
        ),
        404,
        "project u/never-made not found",
    ));
    cases.push(case(
        "revoke a project that has no row",
        signed("DELETE", "/v1/projects/u/never-made/share-links", ""),
        404,
        "project u/never-made not found",
    ));

    let row = || {
        let db = app.db.clone();
        async move {
            sqlx::query_as::<_, (serde_json::Value, Option<Vec<u8>>)>(
                "select settings, share_key from projects order by user_id, project_id",
            )
            .fetch_all(&db)
            .await
            .unwrap()
        }
    };
    let (rows, before) = (row().await, stored(&app).await);
    refuse_all(&app, "project settings and share links", &cases).await;
    assert_eq!(stored(&app).await, before, "nothing was stored");
    assert_eq!(row().await, rows, "no project's row changed");
    assert_healthy(&app).await;
}
