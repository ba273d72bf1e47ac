//! Authentication, public health routes, the OpenAPI document and start-up configuration.

use serde_json::Value;

use crate::helpers::{spawn_app, Options, HMAC_SECRET, TOKEN};
use kiln_shared::signing::sign_request;

#[tokio::test]
async fn v1_routes_need_a_token_or_a_fresh_valid_signature() {
    let app = spawn_app(Options::without_builders()).await;
    let url = format!("{}/v1/builds", app.api);
    let body = r#"{"userId":"u","projectId":"p","files":[{"path":"index.html","content":"x"}]}"#;
    let now = chrono::Utc::now().timestamp();
    let good = sign_request(HMAC_SECRET.as_bytes(), now, "POST", "/v1/builds", body.as_bytes());
    type Headers = Vec<(&'static str, String)>;
    let cases: Vec<(&str, Headers, &str)> = vec![
        ("nothing", vec![], "authentication required"),
        (
            "wrong token",
            vec![("Authorization", "Bearer nope".into())],
            "bearer token is not valid",
        ),
        (
            "basic auth",
            vec![("Authorization", "Basic dTpw".into())],
            "must be: Bearer",
        ),
        (
            "signature only",
            vec![("X-Kiln-Signature", good.clone())],
            "authentication required",
        ),
        (
            "wrong secret",
            vec![
                ("X-Kiln-Timestamp", now.to_string()),
                (
                    "X-Kiln-Signature",
                    sign_request(b"guess", now, "POST", "/v1/builds", body.as_bytes()),
                ),
            ],
            "does not match",
        ),
        (
            "other path",
            vec![
                ("X-Kiln-Timestamp", now.to_string()),
                (
                    "X-Kiln-Signature",
                    sign_request(
                        HMAC_SECRET.as_bytes(),
                        now,
                        "POST",
                        "/rebuild-preview",
                        body.as_bytes(),
                    ),
                ),
            ],
            "does not match",
        ),
        (
            "stale",
            vec![
                ("X-Kiln-Timestamp", (now - 301).to_string()),
                (
                    "X-Kiln-Signature",
                    sign_request(
                        HMAC_SECRET.as_bytes(),
                        now - 301,
                        "POST",
                        "/v1/builds",
                        body.as_bytes(),
                    ),
                ),
            ],
            "300 seconds",
        ),
        (
            "future",
            vec![
                ("X-Kiln-Timestamp", (now + 400).to_string()),
                (
                    "X-Kiln-Signature",
                    sign_request(
                        HMAC_SECRET.as_bytes(),
                        now + 400,
                        "POST",
                        "/v1/builds",
                        body.as_bytes(),
                    ),
                ),
            ],
            "300 seconds",
        ),
        (
            "malformed",
            vec![
                ("X-Kiln-Timestamp", now.to_string()),
                ("X-Kiln-Signature", "md5=abc".into()),
            ],
            "sha256=",
        ),
        (
            "bad timestamp",
            vec![
                ("X-Kiln-Timestamp", "noon".into()),
                ("X-Kiln-Signature", good.clone()),
            ],
            "unix time",
        ),
    ];
    for (name, headers, message) in cases {
        let mut req = app.client.post(&url).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401, "{name}");
        let json: Value = res.json().await.unwrap();
        assert!(
            json["error"].as_str().unwrap().contains(message),
            "{name}: {json}"
        );
    }
    // A tampered body with a good signature.
    let res = app
        .client
        .post(&url)
        .header("X-Kiln-Timestamp", now.to_string())
        .header("X-Kiln-Signature", good.clone())
        .body(body.replace("index", "other"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(app.version_count().await, 0);

    // The same request, properly signed, is accepted; so is a GET with a token.
    let res = app.signed("POST", "/v1/builds", body.as_bytes()).await;
    assert_eq!(res.status(), 202);
    let res = app.client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = app.signed("GET", "/v1/builds?limit=5", b"").await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn health_readiness_and_openapi_are_public() {
    let app = spawn_app(Options::without_builders()).await;
    let health: Value = app.public_json("/healthz").await;
    assert_eq!(health["status"], "ok");
    let ready = app
        .client
        .get(format!("{}/readyz", app.api))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["redis"], "ok");
    assert_eq!(ready["checks"]["postgres"], "ok");
    assert_eq!(ready["checks"]["artifact store"], "ok");
    let doc: Value = app.public_json("/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/builds"]["post"]["responses"]["409"].is_object());
    assert!(doc["paths"]["/v1/builds/{id}"]["get"].is_object());
}

#[tokio::test]
async fn readiness_names_what_is_unreachable() {
    let mut settings_app = spawn_app(Options::without_builders()).await;
    // A second API on the same database, pointed at a Redis that is not there.
    let mut settings = settings_app.settings.clone();
    settings.redis.url = "redis://127.0.0.1:1".to_owned().into();
    settings.api.addr = "127.0.0.1:0".into();
    settings.preview.addr = "127.0.0.1:0".into();
    let app = kiln_api::Application::build(settings).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let res = settings_app
        .client
        .get(format!("{url}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let json: Value = res.json().await.unwrap();
    assert!(
        json["error"].as_str().unwrap().starts_with("not ready: redis"),
        "{json}"
    );
    assert_eq!(json["checks"]["postgres"], "ok");

    // With Redis down, admission records the build as failed and answers 503 with its id.
    let body = r#"{"userId":"u","projectId":"p","files":[{"path":"index.html","content":"x"}]}"#;
    let res = settings_app
        .client
        .post(format!("{url}/v1/builds"))
        .bearer_auth(TOKEN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let json: Value = res.json().await.unwrap();
    assert!(json["error"].as_str().unwrap().contains("unavailable"), "{json}");
    settings_app.api = url;
    let id = json["buildId"].as_str().expect("the 503 names the build");
    let build = settings_app.get_json(&format!("/v1/builds/{id}")).await;
    assert_eq!(build["status"], "failed");
    assert_eq!(build["failedStep"], "queue");
    assert!(build["error"]
        .as_str()
        .unwrap()
        .starts_with("the build queue is unavailable"));
}

#[test]
fn binaries_exit_non_zero_naming_a_missing_or_invalid_variable() {
    let run = |vars: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kiln-api"));
        cmd.env_clear();
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        )
    };
    assert_eq!(
        run(&[]),
        (
            Some(2),
            "kiln-api: KILN_DATABASE_URL is required: the PostgreSQL URL".into()
        )
    );
    let base = [
        ("KILN_DATABASE_URL", "postgres://x"),
        ("KILN_ARTIFACTS", "file:///tmp/kiln-x"),
    ];
    let (code, err) = run(&base);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        "kiln-api: KILN_HMAC_SECRET is required: the shared secret of the product back end"
    );
    let (code, err) = run(&[
        base[0],
        base[1],
        ("KILN_HMAC_SECRET", "s"),
        ("KILN_MAX_OUTPUT_MB", "lots"),
    ]);
    assert_eq!(code, Some(2));
    assert_eq!(
        err,
        "kiln-api: KILN_MAX_OUTPUT_MB is invalid: expected a positive integer, got \"lots\""
    );
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let app = spawn_app(Options::without_builders()).await;
    let doc: Value = app.public_json("/openapi.json").await;
    let id = ulid::Ulid::new().to_string();
    let mut checked = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{a}", &id)
            .replace("{b}", &id)
            .replace("{path}", "index.html")
            .replace("{id}", &id)
            .replace("{userId}", "u")
            .replace("{projectId}", "p")
            .replace("{name}", "API_URL");
        for method in methods.as_object().unwrap().keys() {
            let res = match method.as_str() {
                "get" => app.get(&concrete).await,
                "post" => app.signed("POST", &concrete, b"{}").await,
                "delete" => app.signed("DELETE", &concrete, b"").await,
                "patch" => app.signed("PATCH", &concrete, b"{}").await,
                "put" => app.signed("PUT", &concrete, b"{}").await,
                other => panic!("undocumented method {other}"),
            };
            let body = res.text().await.unwrap();
            assert!(
                !body.contains("no such route"),
                "{method} {path} is documented but not served"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} routes documented");
    assert!(app
        .get("/v1/no/such/route")
        .await
        .text()
        .await
        .unwrap()
        .contains("no such route"));
}
