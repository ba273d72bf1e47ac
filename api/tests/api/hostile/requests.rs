//! The other routes: hostile bodies, queries and headers.

use serde_json::json;

use super::inputs::nested;
use super::table::{assert_healthy, case, refuse_all, stored};
use super::wire::{operator, signed, Send};
use crate::helpers::{build_body, spawn_app, unique, Options, TOKEN};

#[tokio::test]
async fn other_bodies_queries_and_headers_are_refused() {
    let app = spawn_app(Options::without_builders()).await;
    let project = unique("other");
    let id = app
        .submit(&build_body(
            "u",
            &project,
            json!([{ "path": "index.html", "content": "x" }]),
        ))
        .await;
    let rollback = format!("/v1/projects/u/{project}/rollback");
    let mut cases = Vec::new();
    // Bodies of the other routes that take one.
    for (name, path, body, status, says) in [
        (
            "tokens: userId 42",
            "/v1/tokens",
            r#"{"userId":42}"#.to_owned(),
            400,
            "invalid type: integer `42`",
        ),
        (
            "tokens: userId twice",
            "/v1/tokens",
            r#"{"userId":"a","userId":"b"}"#.into(),
            400,
            "duplicate field `userId`",
        ),
        (
            "tokens: description []",
            "/v1/tokens",
            r#"{"userId":"a","description":[]}"#.into(),
            400,
            "invalid type: sequence",
        ),
        (
            "tokens: control characters",
            "/v1/tokens",
            r#"{"userId":"a","description":"a\u0007b"}"#.into(),
            400,
            "without control characters",
        ),
        (
            "tokens: deep",
            "/v1/tokens",
            nested(10_000, true),
            400,
            "unknown field `a`",
        ),
        (
            "tokens: raw NUL",
            "/v1/tokens",
            "{\"userId\":\"\u{fffd}\"}".replace('\u{fffd}', "\u{0}"),
            400,
            "control character",
        ),
        (
            "rollback: versionId 42",
            &rollback,
            r#"{"versionId":42}"#.into(),
            400,
            "invalid type: integer `42`",
        ),
        (
            "rollback: versionId twice",
            &rollback,
            format!(r#"{{"versionId":"{id}","versionId":"{id}"}}"#),
            400,
            "duplicate field `versionId`",
        ),
        (
            "rollback: versionId null",
            &rollback,
            r#"{"versionId":null}"#.into(),
            422,
            "versionId is required",
        ),
        (
            "rollback: versionId ../",
            &rollback,
            r#"{"versionId":"../../x"}"#.into(),
            422,
            "versionId is not a valid id",
        ),
        (
            "rollback: deep",
            &rollback,
            nested(10_000, false),
            400,
            "must be a JSON object, not an array",
        ),
        (
            "rollback: unknown field",
            &rollback,
            format!(r#"{{"versionId":"{id}","force":true}}"#),
            400,
            "unknown field `force`",
        ),
        (
            "rollback: not JSON",
            &rollback,
            "versionId=x".into(),
            400,
            "invalid JSON",
        ),
        (
            "webhooks: url 42",
            "/v1/webhooks",
            r#"{"url":42}"#.into(),
            400,
            "invalid type: integer `42`",
        ),
        (
            "webhooks: url twice",
            "/v1/webhooks",
            r#"{"url":"http://a/","url":"http://b/"}"#.into(),
            400,
            "duplicate field `url`",
        ),
        (
            "webhooks: eventTypes text",
            "/v1/webhooks",
            r#"{"url":"http://a/","eventTypes":"x"}"#.into(),
            400,
            "expected a sequence",
        ),
        (
            "webhooks: eventTypes [1]",
            "/v1/webhooks",
            r#"{"url":"http://a/","eventTypes":[1]}"#.into(),
            400,
            "invalid type: integer `1`",
        ),
        (
            "webhooks: file URL",
            "/v1/webhooks",
            r#"{"url":"file:///etc/passwd"}"#.into(),
            422,
            "must be an http:// or https:// URL",
        ),
        (
            "webhooks: deep",
            "/v1/webhooks",
            format!(r#"{{"url":"http://a/","eventTypes":{}}}"#, nested(10_000, false)),
            400,
            "invalid type: sequence, expected a string",
        ),
    ] {
        cases.push(case(name, signed("POST", path.to_owned(), body), status, says));
    }
    // A project's environment and its redeploy.
    let env = format!("/v1/projects/u/{project}/env");
    for (name, method, path, body, status, says) in [
        ("env: value 42", "PUT", format!("{env}/API_URL"), r#"{"value":42}"#.to_owned(), 400, "invalid type: integer `42`"),
        ("env: value twice", "PUT", format!("{env}/API_URL"), r#"{"value":"a","value":"b"}"#.into(), 400, "duplicate field `value`"),
        ("env: secret text", "PUT", format!("{env}/API_URL"), r#"{"value":"a","secret":"yes"}"#.into(), 400, "invalid type: string"),
        ("env: unknown field", "PUT", format!("{env}/API_URL"), r#"{"value":"a","public":true}"#.into(), 400, "unknown field `public`"),
        ("env: no value", "PUT", format!("{env}/API_URL"), "{}".into(), 422, "value is missing"),
        ("env: NUL in the value", "PUT", format!("{env}/API_URL"), r#"{"value":"a\u0000b"}"#.into(), 422, "contains a NUL byte"),
        ("env: value over 32 KB", "PUT", format!("{env}/API_URL"), format!(r#"{{"value":"{}"}}"#, "x".repeat(32 * 1024 + 1)), 422, "at most 32768 bytes"),
        ("env: lower-case name", "PUT", format!("{env}/api_url"), r#"{"value":"a"}"#.into(), 422, "must match [A-Z_][A-Z0-9_]*"),
        ("env: name with a dot", "PUT", format!("{env}/A.B"), r#"{"value":"a"}"#.into(), 422, "must match [A-Z_][A-Z0-9_]*"),
        ("env: name over 128 bytes", "PUT", format!("{env}/{}", "A".repeat(129)), r#"{"value":"a"}"#.into(), 422, "names are at most 128"),
        ("env: PATH", "PUT", format!("{env}/PATH"), r#"{"value":"/tmp"}"#.into(), 422, "set by Kiln's sandbox"),
        ("env: LD_PRELOAD", "PUT", format!("{env}/LD_PRELOAD"), r#"{"value":"/tmp/x.so"}"#.into(), 422, "starts with LD_"),
        ("env: KILN_ name", "PUT", format!("{env}/KILN_DATABASE_URL"), r#"{"value":"x"}"#.into(), 422, "starts with KILN_"),
        ("env: NODE_OPTIONS", "PUT", format!("{env}/NODE_OPTIONS"), r#"{"value":"--require /tmp/x"}"#.into(), 422, "set by Kiln's sandbox"),
        ("env: published secret", "PUT", format!("{env}/NEXT_PUBLIC_KEY"), r#"{"value":"k","secret":true}"#.into(), 422, "would be served to every visitor"),
        ("env: delete a bad name", "DELETE", format!("{env}/a-b"), String::new(), 422, "must match"),
        ("redeploy: versionId 42", "POST", format!("/v1/projects/u/{project}/redeploy"), r#"{"versionId":42}"#.into(), 400, "invalid type: integer `42`"),
        ("redeploy: versionId ../", "POST", format!("/v1/projects/u/{project}/redeploy"), r#"{"versionId":"../x"}"#.into(), 422, "versionId is not a valid id"),
        ("redeploy: unknown field", "POST", format!("/v1/projects/u/{project}/redeploy"), r#"{"forced":true}"#.into(), 400, "unknown field `forced`"),
        ("redeploy: force as a string", "POST", format!("/v1/projects/u/{project}/redeploy"), r#"{"force":"true"}"#.into(), 422, "force must be true or false, not a string"),
        ("redeploy: force as an object", "POST", format!("/v1/projects/u/{project}/redeploy"), r#"{"force":{}}"#.into(), 422, "force must be true or false, not an object"),
        ("redeploy: another project's version", "POST", format!("/v1/projects/u/other-{project}/redeploy"), format!(r#"{{"versionId":"{id}"}}"#), 404, "is not a version of project"),
        ("build: env name", "POST", "/v1/builds".into(), json!({"userId": "u", "projectId": project, "files": [{"path": "a", "content": "b"}], "env": {"HOME": "/"}}).to_string(), 422, "env: environment name HOME is set by Kiln's sandbox"),
        ("build: env value type", "POST", "/v1/builds".into(), json!({"userId": "u", "projectId": project, "files": [{"path": "a", "content": "b"}], "env": {"A": 1}}).to_string(), 422, "env.A must be a string"),
    ] {
        let method: &'static str = match method {
            "PUT" => "PUT",
            "DELETE" => "DELETE",
            _ => "POST",
        };
        cases.push(case(name, signed(method, path, body), status, says));
    }
    cases.push(case(
        "tokens: 0xff",
        signed("POST", "/v1/tokens", b"{\"userId\":\"\xff\"}".to_vec()),
        400,
        "invalid unicode code point",
    ));
    // Query strings: repeated, mistyped, out of range, invalid UTF-8, injected.
    for (name, path, says) in [
        (
            "limit twice",
            "/v1/builds?limit=1&limit=100".to_owned(),
            "duplicate field `limit`",
        ),
        (
            "userId twice",
            "/v1/builds?userId=u&userId=admin".into(),
            "duplicate field `userId`",
        ),
        ("limit text", "/v1/builds?limit=all".into(), "invalid digit"),
        (
            "limit huge",
            "/v1/builds?limit=99999999999999999999".into(),
            "number too large",
        ),
        (
            "limit 0",
            "/v1/builds?limit=0".into(),
            "limit must be between 1 and 100",
        ),
        (
            "limit -1",
            "/v1/builds?limit=-1".into(),
            "limit must be between 1 and 100",
        ),
        (
            "unknown parameter",
            "/v1/builds?colour=blue".into(),
            "unknown field `colour`",
        ),
        ("userId %ff", "/v1/builds?userId=%ff".into(), "userId must be"),
        (
            "userId injected",
            "/v1/builds?userId=u%27%20or%201%3D1--".into(),
            "userId must be",
        ),
        ("status unknown", "/v1/builds?status=deployed%00".into(), "status"),
        (
            "before cursor",
            "/v1/builds?before=zzz".into(),
            "before is not a valid id",
        ),
        (
            "before cursor ../",
            "/v1/builds?before=..%2f..".into(),
            "before is not a valid id",
        ),
        (
            "versions cursor",
            format!("/v1/projects/u/{project}/versions?before=%2e%2e"),
            "before is not a valid id",
        ),
        (
            "events after -1",
            format!("/v1/builds/{id}/events?after=-1"),
            "after must be an event id",
        ),
        (
            "events after huge",
            format!("/v1/builds/{id}/events?after=4294967296"),
            "after must be an event id",
        ),
        (
            "events limit 0",
            format!("/v1/builds/{id}/events?limit=0"),
            "limit must be 1-1000",
        ),
        (
            "events after text",
            format!("/v1/builds/{id}/events?after=1e3"),
            "invalid digit",
        ),
        (
            "logs after -1",
            format!("/v1/builds/{id}/logs?after=-1"),
            "after must be a line number",
        ),
        (
            "logs follow maybe",
            format!("/v1/builds/{id}/logs?follow=maybe"),
            "was not `true` or `false`",
        ),
        (
            "diff mode",
            format!("/v1/projects/u/{project}/versions/{id}/diff/{id}?mode=%2e%2e"),
            "mode must be stat or patch",
        ),
        (
            "artifact source",
            format!("/v1/projects/u/{project}/versions/{id}/artifact?source=yes"),
            "was not `true` or `false`",
        ),
        (
            "tokens userId",
            "/v1/tokens?userId=..%2fadmin".into(),
            "userId must be",
        ),
        (
            "projects limit 0",
            "/v1/projects?limit=0".into(),
            "limit must be between 1 and 100",
        ),
        (
            "projects limit 101",
            "/v1/projects?limit=101".into(),
            "limit must be between 1 and 100",
        ),
        (
            "projects cursor",
            "/v1/projects?before=..%2f..".into(),
            "is not a cursor this API gave",
        ),
        (
            "projects cursor forged",
            // base64url of `1:u:../p`: a cursor's form around a path that is no project id.
            "/v1/projects?before=MTp1Oi4uL3A".into(),
            "is not a cursor this API gave",
        ),
        (
            "projects userId",
            "/v1/projects?userId=u%27%20or%201%3D1--".into(),
            "userId must be",
        ),
        (
            "projects unknown parameter",
            "/v1/projects?user=u".into(),
            "unknown field `user`",
        ),
        (
            "deletion id",
            "/v1/deletions/..%2f..".into(),
            "deletion id must be",
        ),
        (
            "deletion id of a build",
            format!("/v1/deletions/{id}"),
            "deletion id must be",
        ),
        (
            "deliveries cursor",
            "/v1/webhooks/wh_01aaaaaaaaaaaaaaaaaaaaaaaa/deliveries?before=..".into(),
            "delivery id must be",
        ),
    ] {
        cases.push(case(format!("query: {name}"), operator("GET", path), 400, says));
    }
    // Headers whose values are checked.
    let stream = format!("/v1/builds/{id}/events/stream");
    for (name, path, header, value, says) in [
        (
            "Last-Event-ID text",
            stream.clone(),
            "Last-Event-ID",
            b"latest".to_vec(),
            "Last-Event-ID must be a number",
        ),
        (
            "Last-Event-ID 0xff",
            stream.clone(),
            "Last-Event-ID",
            b"\xff".to_vec(),
            "Last-Event-ID must be a number",
        ),
        (
            "Last-Event-ID -1",
            stream.clone(),
            "Last-Event-ID",
            b"-1".to_vec(),
            "after must be an event id",
        ),
        (
            "Last-Event-ID huge",
            stream.clone(),
            "Last-Event-ID",
            b"99999999999999999999".to_vec(),
            "Last-Event-ID must be a number",
        ),
        (
            "Last-Event-ID on logs",
            format!("/v1/builds/{id}/logs?follow=true"),
            "Last-Event-ID",
            b"-5".to_vec(),
            "after must be a line number",
        ),
    ] {
        let send = Send::Bare {
            method: "GET",
            path,
            headers: vec![
                ("Authorization", format!("Bearer {TOKEN}").into_bytes()),
                (header, value),
            ],
            body: Vec::new(),
        };
        cases.push(case(name, send, 400, says));
    }
    for (name, key) in [
        ("Idempotency-Key 0xff", b"\xff\xfe".to_vec()),
        ("Idempotency-Key empty", Vec::new()),
        ("Idempotency-Key 256 bytes", vec![b'k'; 256]),
    ] {
        let body = build_body("u", &unique("idem"), json!([{ "path": "a", "content": "1" }])).to_string();
        let send = Send::Signed {
            method: "POST",
            path: "/v1/builds".into(),
            body: body.into_bytes(),
            headers: vec![("Idempotency-Key", key)],
        };
        cases.push(case(
            name,
            send,
            400,
            "Idempotency-Key must be 1-255 visible characters",
        ));
    }

    let before = stored(&app).await;
    refuse_all(&app, "other bodies, queries and headers", &cases).await;
    assert_eq!(stored(&app).await, before, "nothing was stored");
    assert_healthy(&app).await;
}
