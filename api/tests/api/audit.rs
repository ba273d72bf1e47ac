//! The dependency audit: a real install from the registry (through the egress proxy), its
//! lockfile checked against an advisory folder in OSV's format (`tests/fixtures/osv`: the
//! GitHub advisory for minimist ≤ 1.2.5, as OSV publishes it).

use serde_json::json;

use crate::helpers::{build_body, spawn_app, unique, Options, TestApp};

fn with_dependency(version: &str) -> serde_json::Value {
    let package = json!({
        "name": "audited",
        "private": true,
        "dependencies": { "minimist": version },
        "scripts": { "build": "node build.js" },
    });
    let build = "const fs = require('fs'); const m = require('minimist'); fs.mkdirSync('dist'); fs.writeFileSync('dist/index.html', JSON.stringify(m(['--a', 'b'])));";
    json!([
        { "path": "package.json", "content": package.to_string() },
        { "path": "build.js", "content": build },
    ])
}

async fn audited(mode: &str) -> TestApp {
    let db = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/osv");
    spawn_app(Options {
        env: vec![
            ("KILN_AUDIT", mode.to_owned()),
            ("KILN_AUDIT_DB", db.display().to_string()),
        ],
        shared_store: true,
        ..Options::without_builders()
    })
    .await
}

#[tokio::test]
async fn a_critical_advisory_fails_the_build_at_the_audit_naming_it_and_its_fix_deploys() {
    let app = audited("fail").await;
    let id = app
        .submit(&build_body(
            "u_audit",
            &unique("vulnerable"),
            with_dependency("1.2.5"),
        ))
        .await;
    let build = app.build_one(&id).await;
    assert_eq!(build["status"], "failed", "{build}");
    assert_eq!(build["failedStep"], "audit", "{build}");
    assert_eq!(
        build["error"],
        "dependency audit: 1 critical advisory: GHSA-xvch-5gv4-984h (critical) minimist@1.2.5: Prototype Pollution in minimist; fixed in 1.2.6"
    );
    assert_eq!(app.preview(&id, "/").await.status(), 404, "nothing published");
    let log = app.log_text(&id).await;
    assert!(
        log.contains("[kiln] audit: 1 packages checked against 1 advisories: 1 critical, 0 high"),
        "{log}"
    );

    // The fixed version passes the same audit and deploys.
    let fixed = app
        .submit(&build_body("u_audit", &unique("fixed"), with_dependency("1.2.6")))
        .await;
    let build = app.build_one(&fixed).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert!(app
        .log_text(&fixed)
        .await
        .contains("[kiln] audit: 1 packages checked against 1 advisories: 0 critical"));
}

#[tokio::test]
async fn a_warning_audit_logs_the_advisory_and_deploys() {
    let app = audited("warn").await;
    let id = app
        .submit(&build_body(
            "u_audit",
            &unique("warned"),
            with_dependency("1.2.5"),
        ))
        .await;
    let build = app.build_one(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    let log = app.log_text(&id).await;
    assert!(
        log.contains("[kiln] audit: GHSA-xvch-5gv4-984h (critical) minimist@1.2.5: Prototype Pollution in minimist; fixed in 1.2.6"),
        "{log}"
    );
    let page = app.preview(&id, "/").await.text().await.unwrap();
    assert_eq!(page, r#"{"_":[],"a":"b"}"#);
}
