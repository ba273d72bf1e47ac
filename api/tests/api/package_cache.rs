//! The fleet-wide package cache, for real: builder daemons with work folders and (empty) pnpm
//! stores of their own, real pnpm, the real registry, the full sandbox. What one builder
//! fetched, another installs from the farm's artifact store, even with the registry out of
//! its reach (its `KILN_EGRESS_ALLOW` names a host that does not exist); a tampered cached
//! tarball is refused and fetched again; a tenant's lockfile cannot make the cache serve
//! another tenant other bytes than the registry's.

use std::path::Path;
use std::time::Instant;

use base64::Engine;
use kiln_shared::config::{AllowedHost, Egress};
use kiln_shared::metrics::sample;
use serde_json::{json, Value};
use sha2::Digest;

use crate::helpers::{build_body, spawn_app, unique, BuilderHandle, Options, TestApp};

const PACKAGE_JSON: &str = r#"{
  "name": "fleet-cache",
  "private": true,
  "dependencies": { "is-number": "7.0.0", "is-odd": "3.0.1" },
  "scripts": { "build": "node build.js" }
}"#;

/// is-number@7.0.0's integrity, as the registry has it.
const IS_NUMBER_7: &str =
    "sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==";
/// is-number@6.0.0's.
const IS_NUMBER_6: &str =
    "sha512-Wu1VHeILBK8KAWJUAiSZQX94GmOE45Rg6/538fKwiloUu21KncEkYGPqob2oSZ5mUT73vLGrHQjKw3KMPwfDzg==";

/// pnpm's lockfile of [`PACKAGE_JSON`] (three tarballs), with is-number@7.0.0's integrity.
fn lockfile(is_number_7: &str) -> String {
    format!(
        r#"lockfileVersion: '9.0'

settings:
  autoInstallPeers: true
  excludeLinksFromLockfile: false

importers:

  .:
    dependencies:
      is-number:
        specifier: 7.0.0
        version: 7.0.0
      is-odd:
        specifier: 3.0.1
        version: 3.0.1

packages:

  is-number@6.0.0:
    resolution: {{integrity: {IS_NUMBER_6}}}
    engines: {{node: '>=0.10.0'}}

  is-number@7.0.0:
    resolution: {{integrity: {is_number_7}}}
    engines: {{node: '>=0.12.0'}}

  is-odd@3.0.1:
    resolution: {{integrity: sha512-CQpnWPrDwmP1+SMHXZhtLtJv90yiyVfluGsX5iNCVkrhQtU3TQHsUWPG9wkdk9Lgd5yNpAg9jQEo90CBaXgWMA==}}
    engines: {{node: '>=4'}}

snapshots:

  is-number@6.0.0: {{}}

  is-number@7.0.0: {{}}

  is-odd@3.0.1:
    dependencies:
      is-number: 6.0.0
"#
    )
}

const BUILD_JS: &str = r#"
const fs = require('fs');
const isNumber = require('is-number');
const isOdd = require('is-odd');
fs.mkdirSync('dist', { recursive: true });
fs.writeFileSync('dist/index.html',
  `is-number ${require('is-number/package.json').version}: ${isNumber(5)}; is-odd(3): ${isOdd(3)}`);
"#;

const PAGE: &str = "is-number 7.0.0: true; is-odd(3): true";

fn project(lockfile: &str) -> Value {
    json!([
        { "path": "package.json", "content": PACKAGE_JSON },
        { "path": "pnpm-lock.yaml", "content": lockfile },
        { "path": "build.js", "content": BUILD_JS },
    ])
}

/// A folder for the builders' work folders, which their build users can traverse.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    dir
}

/// A builder with its own work folder and an empty pnpm store; with `registry_down`, its
/// egress allow-list names only a host that does not exist.
fn builder(app: &TestApp, dir: &Path, name: &str, registry_down: bool) -> BuilderHandle {
    let work = dir.join(name);
    app.start_builder(name, |s| {
        s.builder.work_dir = work.clone();
        s.builder.pnpm_store = work.join("pnpm-store");
        if registry_down {
            s.sandbox.egress = Egress::Allow(vec![AllowedHost {
                host: "registry.outage.invalid".into(),
                port: 443,
            }]);
        }
    })
}

async fn stop(handle: BuilderHandle) {
    handle.shutdown.cancel();
    let _ = handle.task.await;
}

/// Builds `files` as `user/<a new project>`: the build and its log.
async fn build(app: &TestApp, user: &str, files: Value) -> (Value, String) {
    let id = app.submit(&build_body(user, &unique("cache"), files)).await;
    let build = app.wait(&id).await;
    let log = app.log_text(&id).await;
    (build, log)
}

fn counted(metrics: &str, result: &str) -> f64 {
    sample(
        metrics,
        "kiln_package_cache_requests_total",
        &[("result", result)],
    )
    .unwrap_or(0.0)
}

/// The object of the cached tarball of `name@version` in the filesystem store, and its name.
async fn cached_object(app: &TestApp, name: &str, version: &str) -> (std::path::PathBuf, String) {
    let hex: String =
        sqlx::query_scalar("select integrity from package_cache where name = $1 and version = $2")
            .bind(name)
            .bind(version)
            .fetch_one(&app.db)
            .await
            .unwrap_or_else(|e| panic!("{name}@{version} is not in the index: {e}"));
    let path = app
        .artifacts_dir
        .as_ref()
        .unwrap()
        .join("packages/sha512")
        .join(&hex);
    (path, hex)
}

fn sri_hex(sri: &str) -> String {
    let b64 = sri.strip_prefix("sha512-").unwrap();
    hex::encode(base64::engine::general_purpose::STANDARD.decode(b64).unwrap())
}

#[tokio::test]
async fn a_builder_with_an_empty_store_installs_a_known_tree_from_the_fleet_cache_with_the_registry_down() {
    let app = spawn_app(Options::without_builders()).await;
    let dir = folder();

    // Builder x fetches the tree from the registry (its store is empty too).
    let x = builder(&app, dir.path(), "cache-x", false);
    let (built, log) = build(&app, "u_cache_x", project(&lockfile(IS_NUMBER_7))).await;
    assert_eq!(built["status"], "deployed", "{built}\n{log}");
    assert!(
        log.contains("[kiln] packages: 0 from the fleet cache, 3 from the registry"),
        "{log}"
    );
    let metrics = app.builder_metrics("cache-x").await;
    assert_eq!(counted(&metrics, "miss"), 3.0, "{metrics}");
    stop(x).await;
    // What it fetched is in the artifact store, under the registry's own hash.
    let (object, hex) = cached_object(&app, "is-number", "7.0.0").await;
    assert_eq!(hex, sri_hex(IS_NUMBER_7));
    assert!(object.is_file(), "{}", object.display());

    // Builder y: an empty store, and the registry out of its reach. Another tenant's build of
    // the same tree installs from the fleet's cache and deploys.
    let y = builder(&app, dir.path(), "cache-y", true);
    let started = Instant::now();
    let (built, log) = build(&app, "u_cache_y", project(&lockfile(IS_NUMBER_7))).await;
    assert_eq!(built["status"], "deployed", "{built}\n{log}");
    eprintln!("built on y in {:?}", started.elapsed());
    assert!(
        log.contains("[kiln] packages: 3 from the fleet cache, 0 from the registry"),
        "{log}"
    );
    let id = built["id"].as_str().unwrap();
    assert_eq!(app.preview(id, "/").await.text().await.unwrap(), PAGE);
    let metrics = app.builder_metrics("cache-y").await;
    assert_eq!(counted(&metrics, "hit"), 3.0, "{metrics}");
    assert!(
        sample(&metrics, "kiln_package_cache_served_bytes_total", &[]).unwrap_or(0.0) > 1000.0,
        "{metrics}"
    );

    // The registry really is out of y's reach: a package the fleet never fetched fails.
    let unknown = json!([
        { "path": "package.json", "content": r#"{"name":"unknown","private":true,"dependencies":{"is-even":"1.0.0"}}"# },
        { "path": "index.html", "content": "x" },
    ]);
    let (built, log) = build(&app, "u_cache_y", unknown).await;
    assert_eq!(built["status"], "failed", "{built}\n{log}");
    assert_eq!(built["failedStep"], "install", "{built}");
    assert!(
        log.contains("the fleet has no copy") || log.contains("cannot be fetched"),
        "{log}"
    );
    stop(y).await;
}

#[tokio::test]
async fn a_tampered_cached_tarball_is_refused_and_fetched_again() {
    let app = spawn_app(Options::without_builders()).await;
    let dir = folder();
    let x = builder(&app, dir.path(), "tamper-x", false);
    let (built, log) = build(&app, "u_tamper_x", project(&lockfile(IS_NUMBER_7))).await;
    assert_eq!(built["status"], "deployed", "{built}\n{log}");
    stop(x).await;

    // Someone with access to the bucket changes a cached tarball.
    let (object, hex) = cached_object(&app, "is-number", "7.0.0").await;
    let mut bytes = std::fs::read(&object).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&object, &bytes).unwrap();

    let y = builder(&app, dir.path(), "tamper-y", false);
    let (built, log) = build(&app, "u_tamper_y", project(&lockfile(IS_NUMBER_7))).await;
    assert_eq!(built["status"], "deployed", "{built}\n{log}");
    assert_eq!(
        app.preview(built["id"].as_str().unwrap(), "/")
            .await
            .text()
            .await
            .unwrap(),
        PAGE
    );
    assert!(
        log.contains(
            "[kiln] package cache: the stored tarball of is-number@7.0.0 failed its integrity check: refused"
        ),
        "{log}"
    );
    assert!(
        log.contains("[kiln] packages: 2 from the fleet cache, 1 from the registry, 1 cached copy refused"),
        "{log}"
    );
    let metrics = app.builder_metrics("tamper-y").await;
    assert_eq!(
        (
            counted(&metrics, "refused"),
            counted(&metrics, "miss"),
            counted(&metrics, "hit")
        ),
        (1.0, 1.0, 2.0),
        "{metrics}"
    );
    stop(y).await;
    // The object is the registry's bytes again.
    let restored = std::fs::read(&object).unwrap();
    assert_eq!(hex::encode(sha2::Sha512::digest(&restored)), hex);
}

#[tokio::test]
async fn a_tenants_lockfile_cannot_make_the_cache_serve_another_tenant_other_bytes() {
    let app = spawn_app(Options::without_builders()).await;
    let dir = folder();

    // The attacker's lockfile says is-number@7.0.0 is the tarball of is-number@6.0.0 (bytes
    // the registry has, under another version): their install gets the registry's 7.0.0, which
    // does not match their claim, and fails.
    let x = builder(&app, dir.path(), "poison-x", false);
    let (built, log) = build(&app, "u_attacker", project(&lockfile(IS_NUMBER_6))).await;
    assert_eq!(built["status"], "failed", "{built}\n{log}");
    assert_eq!(built["failedStep"], "install", "{built}");
    stop(x).await;
    // What the cache recorded for is-number@7.0.0 is the registry's, not the claim.
    let (object, hex) = cached_object(&app, "is-number", "7.0.0").await;
    assert_eq!(hex, sri_hex(IS_NUMBER_7));
    assert_ne!(hex, sri_hex(IS_NUMBER_6));
    let stored = std::fs::read(&object).unwrap();
    assert_eq!(hex::encode(sha2::Sha512::digest(&stored)), hex);

    // Another tenant, on a builder whose store is empty and whose registry is down, gets the
    // registry's is-number@7.0.0 from the cache.
    let y = builder(&app, dir.path(), "poison-y", true);
    let (built, log) = build(&app, "u_victim", only_is_number()).await;
    stop(y).await;
    assert_eq!(built["status"], "deployed", "{built}\n{log}");
    assert_eq!(
        app.preview(built["id"].as_str().unwrap(), "/")
            .await
            .text()
            .await
            .unwrap(),
        "is-number 7.0.0: true"
    );
    assert!(
        log.contains("[kiln] packages: 1 from the fleet cache, 0 from the registry"),
        "{log}"
    );
}

/// A project of is-number@7.0.0 alone, with its lockfile.
fn only_is_number() -> Value {
    let lockfile = format!(
        r#"lockfileVersion: '9.0'

settings:
  autoInstallPeers: true
  excludeLinksFromLockfile: false

importers:

  .:
    dependencies:
      is-number:
        specifier: 7.0.0
        version: 7.0.0

packages:

  is-number@7.0.0:
    resolution: {{integrity: {IS_NUMBER_7}}}
    engines: {{node: '>=0.12.0'}}

snapshots:

  is-number@7.0.0: {{}}
"#
    );
    let build_js = r#"
const fs = require('fs');
fs.mkdirSync('dist', { recursive: true });
fs.writeFileSync('dist/index.html',
  `is-number ${require('is-number/package.json').version}: ${require('is-number')(5)}`);
"#;
    json!([
        { "path": "package.json", "content": r#"{"name":"victim","private":true,"dependencies":{"is-number":"7.0.0"},"scripts":{"build":"node build.js"}}"# },
        { "path": "pnpm-lock.yaml", "content": lockfile },
        { "path": "build.js", "content": build_js },
    ])
}
