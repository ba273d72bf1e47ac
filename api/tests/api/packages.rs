//! Projects that come from other package managers, or ask for another Node, built for real:
//! an npm lockfile keeps the versions it pins (through `pnpm import`), `packageManager` naming
//! another manager is noted and the build goes on, and `engines.node` this builder cannot
//! satisfy fails the install naming both versions.

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, tree, unique, Options};

/// The fixture's package.json asks for `ms@^2.1.0` (2.1.3 is the newest) and its npm
/// lockfile pins 2.1.1; its build writes the installed version into the page.
#[tokio::test]
async fn a_project_with_an_npm_lockfile_keeps_the_versions_it_pins() {
    let app = spawn_app(Options {
        shared_store: true,
        ..Options::default()
    })
    .await;
    let project = unique("npm");
    let id = app
        .submit(&build_body(
            "u_npm",
            &project,
            tree("api/tests/fixtures/npm-lockfile"),
        ))
        .await;
    let build: Value = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(build["outputDir"], "dist", "{build}");
    let page = app.preview(&id, "/").await.text().await.unwrap();
    assert!(
        page.contains("ms 2.1.1"),
        "not the version the lockfile pins: {page}"
    );
    let log = app.log_text(&id).await;
    assert!(
        log.contains("package-lock.json and no pnpm-lock.yaml: `pnpm import`"),
        "{log}"
    );
    assert!(
        log.contains("package.json names npm@10.9.2 as its package manager"),
        "{log}"
    );
    // The lockfile pnpm wrote is kept with the version's sources, so a rebuild installs the
    // same tree without importing again.
    let files = app
        .get_json(&format!("/v1/projects/u_npm/{project}/versions/{id}/files"))
        .await;
    assert!(files.to_string().contains("pnpm-lock.yaml"), "{files}");
}

/// The same with Yarn: its lockfile pins ms 2.1.2 for `^2.1.0`.
#[tokio::test]
async fn a_project_with_a_yarn_lockfile_keeps_the_versions_it_pins() {
    let app = spawn_app(Options {
        shared_store: true,
        ..Options::default()
    })
    .await;
    let id = app
        .submit(&build_body(
            "u_yarn",
            &unique("yarn"),
            tree("api/tests/fixtures/yarn-lockfile"),
        ))
        .await;
    let build: Value = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    let page = app.preview(&id, "/").await.text().await.unwrap();
    assert!(
        page.contains("ms 2.1.2"),
        "not the version the lockfile pins: {page}"
    );
    let log = app.log_text(&id).await;
    assert!(
        log.contains("yarn.lock and no pnpm-lock.yaml: `pnpm import`"),
        "{log}"
    );
    assert!(
        log.contains("package.json names yarn@1.22.22 as its package manager"),
        "{log}"
    );
}

#[tokio::test]
async fn engines_node_this_builder_cannot_satisfy_fails_the_install_naming_both_versions() {
    let app = spawn_app(Options::default()).await;
    let package_json = "{\n  \"name\": \"too-new\",\n  \"private\": true,\n  \"engines\": {\n    \"node\": \">=99\"\n  },\n  \"scripts\": { \"build\": \"node -e 0\" }\n}\n";
    let files = json!([
        { "path": "package.json", "content": package_json },
        { "path": "index.html", "content": "<p>hi</p>" },
    ]);
    let id = app
        .submit(&build_body("u_engines", &unique("engines"), files))
        .await;
    let build: Value = app.wait(&id).await;
    assert_eq!(build["status"], "failed", "{build}");
    assert_eq!(build["failedStep"], "install", "{build}");
    let node = build["nodeVersion"]
        .as_str()
        .expect("the builder's Node is recorded on a failed build");
    let node = node.trim().trim_start_matches('v');
    let error = build["error"].as_str().unwrap();
    assert!(error.contains("\">=99\"") && error.contains(node), "{error}");
    assert_eq!(build["diagnosticsTotal"], 1, "{build}");
    let d = &build["diagnostics"][0];
    assert_eq!(
        (&d["tool"], &d["code"], &d["file"], &d["line"], &d["step"]),
        (
            &json!("kiln"),
            &json!("engines_node"),
            &json!("package.json"),
            &json!(5),
            &json!("install")
        ),
        "{d}"
    );
    // The event and the build say the same.
    let events = app.final_events(&id).await;
    let failed = events.last().unwrap();
    assert_eq!(failed["data"]["diagnostics"], build["diagnostics"], "{failed}");
}
