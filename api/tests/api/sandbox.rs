//! What a build can and cannot do: no Kiln variables in its environment, no output over the cap
//! (links out of the output and the limits: `contained.rs`).

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options};

fn project_with_build(script: &str) -> Value {
    json!([
        { "path": "package.json", "content": json!({ "name": "p", "private": true, "scripts": { "build": script } }).to_string() },
        { "path": "build.js", "content": BUILD_JS },
    ])
}

const BUILD_JS: &str = r#"
const fs = require('fs');
fs.mkdirSync('dist', { recursive: true });
fs.writeFileSync('dist/index.html', '<h1>sandbox</h1>');
fs.writeFileSync('dist/env.json', JSON.stringify(process.env));
fs.symlinkSync('index.html', 'dist/inside.html');
const mb = Number(process.argv[2] || 0);
if (mb) fs.writeFileSync('dist/big.bin', Buffer.alloc(mb * 1024 * 1024, 7));
"#;

#[tokio::test]
async fn a_build_sees_no_kiln_variables_and_publishes_links_inside_its_output() {
    let app = spawn_app(Options::without_builders()).await;
    let id = app
        .submit(&build_body(
            "u_s",
            &unique("sandbox"),
            project_with_build("node build.js"),
        ))
        .await;
    let build = app.build_one(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");

    let env: Value = app.preview(&id, "/env.json").await.json().await.unwrap();
    let names: Vec<&String> = env.as_object().unwrap().keys().collect();
    assert!(
        std::env::vars().any(|(k, _)| k.starts_with("KILN_")),
        "the test process has KILN_ variables to leak"
    );
    for name in &names {
        let upper = name.to_ascii_uppercase();
        assert!(
            !upper.starts_with("KILN")
                && !upper.starts_with("AWS")
                && !upper.contains("DATABASE")
                && !upper.contains("SECRET"),
            "the build saw {name}"
        );
    }
    assert_eq!(env["CI"], "true");
    assert!(
        env["HOME"].as_str().unwrap().contains(&id),
        "HOME is the build's own"
    );

    assert_eq!(
        app.preview(&id, "/inside.html").await.text().await.unwrap(),
        "<h1>sandbox</h1>"
    );
    assert_eq!(
        build["metrics"]["fileCount"], 3,
        "index.html, env.json, inside.html"
    );
}

#[tokio::test]
async fn an_output_over_the_cap_fails_the_build_and_publishes_nothing() {
    let app = spawn_app(Options {
        max_output_mb: 2,
        ..Options::without_builders()
    })
    .await;
    let id = app
        .submit(&build_body(
            "u_s",
            &unique("big"),
            project_with_build("node build.js 3"),
        ))
        .await;
    let build = app.build_one(&id).await;
    assert_eq!(build["status"], "failed", "{build}");
    assert_eq!(build["failedStep"], "output");
    assert_eq!(build["error"], "the output is larger than the limit of 2 MB");
    let store = kiln_shared::store::Artifacts::new(std::sync::Arc::new(kiln_shared::store::FsStore::new(
        app.artifacts_dir.clone().unwrap(),
    )));
    let version = kiln_shared::domain::VersionId::parse(&id).unwrap();
    let row = kiln_shared::db::versions::get(&app.db, version)
        .await
        .unwrap()
        .unwrap();
    let sources = row.sources(&store).await.unwrap();
    assert!(
        sources.files.contains_key("build.js"),
        "the sources are kept: {sources:?}"
    );
    let output_key =
        kiln_shared::store::Artifacts::manifest_key(version, kiln_shared::store::ManifestKind::Output);
    assert!(
        store.get_manifest(&output_key).await.unwrap().is_none(),
        "no output manifest for a failed build"
    );
}
