//! Warm dependency trees: a project's rebuild on the builder that installed it gets its
//! `node_modules` back without `pnpm install`, and every change of what decides the tree
//! installs again, saying which. Real pnpm and registry, real sandbox (a uid per build, the
//! store's files read-only to builds), daemons with work folders of their own. Attacks: another
//! tenant's project of the same name gets no tree; a build that swaps a package or writes a
//! store file changes only its own copy; a build cannot list, read or write the host's kept
//! trees by their path.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, unique, BuilderHandle, Options, TestApp};

const BUILD_JS: &str = "const fs = require('fs');\n\
const isNumber = require('is-number');\n\
fs.mkdirSync('dist', { recursive: true });\n\
const msg = fs.readFileSync('msg.txt', 'utf8').trim();\n\
fs.writeFileSync('dist/index.html', `<p>${msg} ${isNumber(5)} ${isNumber('x')}</p>`);\n";

fn package_json(deps: Value) -> String {
    json!({ "name": "warm", "private": true, "scripts": { "build": "node build.js" }, "dependencies": deps })
        .to_string()
}

fn file(path: &str, content: &str) -> Value {
    json!({ "path": path, "content": content })
}

/// A daemon of its own on `app`, with its own work folder (and pnpm store inside it), and
/// `allowed` as the farm's allowed build scripts.
fn daemon(app: &TestApp, name: &str, work: &str, allowed: &[&str]) -> BuilderHandle {
    let work: PathBuf = app.settings.builder.work_dir.with_file_name(work);
    let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
    app.start_builder(name, move |s| {
        s.builder.pnpm_store = work.join("pnpm-store");
        s.builder.work_dir = work;
        s.sandbox.allow_build_scripts = allowed;
    })
}

async fn stop(handle: BuilderHandle) {
    handle.shutdown.cancel();
    let _ = handle.task.await;
}

/// Builds `body` to its end; returns the build, its event types and its log.
async fn built(app: &TestApp, body: &Value) -> (Value, Vec<String>, String) {
    let id = app.submit(body).await;
    let mut build = app.wait(&id).await;
    build["buildId"] = json!(id);
    let events = app
        .final_events(&id)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    let log = app.log_text(&id).await;
    (build, events, log)
}

async fn page(app: &TestApp, build: &Value) -> String {
    let id = build["buildId"].as_str().unwrap();
    app.preview(id, "/").await.text().await.unwrap()
}

#[tokio::test]
async fn a_rebuild_gets_its_projects_tree_without_installing_and_any_change_of_its_key_installs() {
    let app = spawn_app(Options {
        builders: 0,
        ..Options::default()
    })
    .await;
    let (user, project) = ("u_warm", unique("warm"));
    let body = |files: Vec<Value>| json!({ "userId": user, "projectId": project, "files": files });
    let a = daemon(&app, "warm-a", "work-a", &[]);

    // The first build has no lockfile: it installs, and keeps the tree under the lockfile it
    // wrote (kept with the version's sources).
    let (first, events, log) = built(
        &app,
        &body(vec![
            file("package.json", &package_json(json!({ "is-number": "7.0.0" }))),
            file("build.js", BUILD_JS),
            file("msg.txt", "one"),
        ]),
    )
    .await;
    assert_eq!(first["status"], "deployed", "{first}\n{log}");
    assert!(events.contains(&"install_started".to_owned()), "{events:?}");
    assert!(
        log.contains("[kiln] dependencies: installing (the sources have no pnpm-lock.yaml"),
        "{log}"
    );
    assert!(
        log.contains("this tree is kept for the project's next build"),
        "{log}"
    );
    assert_eq!(page(&app, &first).await, "<p>one true false</p>");

    // A source change: the tree comes back, no install runs.
    let (second, events, log) = built(&app, &body(vec![file("msg.txt", "two")])).await;
    assert_eq!(second["status"], "deployed", "{second}\n{log}");
    assert!(events.contains(&"install_skipped".to_owned()), "{events:?}");
    assert!(!events.contains(&"install_started".to_owned()), "{events:?}");
    assert!(log.contains("[kiln] dependencies: install skipped"), "{log}");
    assert!(!log.contains("$ pnpm install"), "{log}");
    assert_eq!(page(&app, &second).await, "<p>two true false</p>");
    assert!(
        second["metrics"]["installMs"].as_i64().unwrap() < 1000,
        "{second}"
    );
    let skipped = app
        .final_events(second["buildId"].as_str().unwrap())
        .await
        .into_iter()
        .find(|e| e["type"] == "install_skipped")
        .unwrap();
    assert!(
        skipped["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("same dependency key"),
        "{skipped}"
    );

    // A build that tampers with its node_modules: it swaps a package for its own, and tries
    // to write a store's file (read-only to it).
    let store_file = "node_modules/.pnpm/is-number@7.0.0/node_modules/is-number/index.js";
    let tamper = format!(
        "rm node_modules/is-number && mkdir node_modules/fake && \
         echo \"module.exports = () => 'tampered'\" > node_modules/fake/index.js && \
         ln -s fake node_modules/is-number && \
         ((echo 'module.exports = () => 0' > {store_file}) 2>/dev/null && echo STORE-WRITTEN || echo store-read-only) && \
         node build.js"
    );
    let mut tampering = body(vec![file("msg.txt", "three")]);
    tampering["settings"] = json!({ "buildCommand": tamper });
    let (third, events, log) = built(&app, &tampering).await;
    assert_eq!(third["status"], "deployed", "{third}\n{log}");
    assert!(events.contains(&"install_skipped".to_owned()), "{events:?}");
    // (The command is in the log too: the words its output printed are lines of their own.)
    let printed = |words: &str| log.lines().any(|line| line.trim() == words);
    assert!(printed("store-read-only") && !printed("STORE-WRITTEN"), "{log}");
    assert_eq!(page(&app, &third).await, "<p>three tampered tampered</p>");
    // The next build has the tree as the install made it.
    let mut clean = body(vec![file("msg.txt", "four")]);
    clean["settings"] = json!({ "buildCommand": "test ! -e node_modules/fake && node build.js" });
    let (fourth, events, log) = built(&app, &clean).await;
    assert_eq!(fourth["status"], "deployed", "{fourth}\n{log}");
    assert!(events.contains(&"install_skipped".to_owned()), "{events:?}");
    assert_eq!(page(&app, &fourth).await, "<p>four true false</p>");

    // Another user's project of the same name and the same files: not this project's tree.
    let lockfile = app
        .get(&format!(
            "/v1/projects/{user}/{project}/versions/{}/files/pnpm-lock.yaml",
            first["buildId"].as_str().unwrap()
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(lockfile.contains("is-number"), "{lockfile}");
    let theirs = json!({ "userId": "u_warm_other", "projectId": project, "files": [
        file("package.json", &package_json(json!({ "is-number": "7.0.0" }))),
        file("pnpm-lock.yaml", &lockfile),
        file("build.js", BUILD_JS),
        file("msg.txt", "theirs"),
    ]});
    let (other, _, log) = built(&app, &theirs).await;
    assert_eq!(other["status"], "deployed", "{other}\n{log}");
    assert!(
        log.contains("no warm tree: no tree of this project on this builder"),
        "{log}"
    );

    // That tenant's build goes for the kept trees themselves: listing, reading and planting a
    // file in the host's cache folder, by its path on the host.
    let deps = app
        .settings
        .builder
        .work_dir
        .with_file_name("work-a")
        .join(".kiln-deps");
    assert!(deps.is_dir(), "the victim's tree is kept in {}", deps.display());
    let attack = format!(
        "for p in {deps} {deps}/*; do if ls \"$p\" >/dev/null 2>&1; then echo \"REACHED $p\"; else echo \"BLOCKED $p\"; fi; done; \
         if echo planted > {deps}/planted 2>/dev/null; then echo REACHED-WRITE; else echo BLOCKED-WRITE; fi; node build.js",
        deps = deps.display()
    );
    let mut attacker = json!({ "userId": "u_warm_other", "projectId": project,
        "files": [file("msg.txt", "attack")] });
    attacker["settings"] = json!({ "buildCommand": attack });
    let (attacked, _, log) = built(&app, &attacker).await;
    assert_eq!(attacked["status"], "deployed", "{attacked}\n{log}");
    let printed = |words: &str| log.lines().any(|line| line.trim() == words);
    assert!(printed("BLOCKED-WRITE") && !printed("REACHED-WRITE"), "{log}");
    assert!(
        !log.lines().any(|line| line.trim_start().starts_with("REACHED ")),
        "{log}"
    );
    assert!(!deps.join("planted").exists());

    // Misses, each naming what changed: the lockfile alone (a comment), then a dependency.
    let (_, events, log) = built(
        &app,
        &body(vec![file("pnpm-lock.yaml", &format!("{lockfile}\n# edited\n"))]),
    )
    .await;
    assert!(events.contains(&"install_started".to_owned()), "{events:?}");
    assert!(log.contains("no warm tree: changed: lockfile)"), "{log}");
    let (added, events, log) = built(
        &app,
        &body(vec![file(
            "package.json",
            &package_json(json!({ "is-number": "7.0.0", "left-pad": "1.3.0" })),
        )]),
    )
    .await;
    assert_eq!(added["status"], "deployed", "{added}\n{log}");
    assert!(events.contains(&"install_started".to_owned()), "{events:?}");
    assert!(log.contains("no warm tree: changed: dependencies"), "{log}");
    // ...whose tree is then the project's: the next build skips the install again.
    let (_, events, _) = built(&app, &body(vec![file("msg.txt", "five")])).await;
    assert!(events.contains(&"install_skipped".to_owned()), "{events:?}");
    stop(a).await;

    // Another builder (its own work folder) has no tree of the project: it installs.
    let b = daemon(&app, "warm-b", "work-b", &[]);
    let (on_b, _, log) = built(&app, &body(vec![file("msg.txt", "six")])).await;
    assert_eq!(on_b["builderId"], "warm-b", "{on_b}");
    assert!(
        log.contains("no warm tree: no tree of this project on this builder"),
        "{log}"
    );
    stop(b).await;

    // The first builder again, started with other allowed build scripts: its trees survived
    // the restart, and the change is named.
    let again = daemon(&app, "warm-a2", "work-a", &["esbuild"]);
    let (on_a, events, log) = built(&app, &body(vec![file("msg.txt", "seven")])).await;
    assert_eq!(on_a["status"], "deployed", "{on_a}\n{log}");
    assert!(events.contains(&"install_started".to_owned()), "{events:?}");
    assert!(
        log.contains("no warm tree: changed: allowed build scripts"),
        "{log}"
    );
    let (_, events, _) = built(&app, &body(vec![file("msg.txt", "eight")])).await;
    assert!(events.contains(&"install_skipped".to_owned()), "{events:?}");

    // Counted in /metrics.
    let metrics = app.builder_metrics("warm-a2").await;
    let sample = |name: &str, labels: &[(&str, &str)]| kiln_shared::metrics::sample(&metrics, name, labels);
    assert_eq!(
        sample("kiln_dep_cache_lookups_total", &[("result", "hit")]),
        Some(1.0)
    );
    assert_eq!(
        sample("kiln_dep_cache_lookups_total", &[("result", "miss")]),
        Some(1.0)
    );
    assert!(sample("kiln_dep_cache_bytes", &[]).unwrap() > 1000.0, "{metrics}");
    stop(again).await;
}

/// A pnpm workspace built with `rootDir: apps/web`: the tree kept is every `node_modules` of
/// the workspace (the top's and the app's, whose link to the workspace's lib package is
/// relative), and a rebuild changing the lib's source gets it back and builds with the change.
#[tokio::test]
async fn a_workspace_rebuild_gets_every_node_modules_folder_of_the_workspace_back() {
    let app = spawn_app(Options::default()).await;
    let project = unique("warm-ws");
    let mut body = crate::helpers::build_body(
        "u_warm_ws",
        &project,
        crate::helpers::tree("api/tests/fixtures/settings-workspace"),
    );
    body["settings"] = json!({ "rootDir": "apps/web" });
    let (first, _, log) = built(&app, &body).await;
    assert_eq!(first["status"], "deployed", "{first}\n{log}");
    assert!(
        log.contains("this tree is kept for the project's next build"),
        "{log}"
    );
    let rebuild = json!({ "userId": "u_warm_ws", "projectId": project,
        "files": [file("packages/lib/index.js", "export const greeting = \"Hello again from the lib\";\n")],
        "settings": { "rootDir": "apps/web" } });
    let (again, events, log) = built(&app, &rebuild).await;
    assert_eq!(again["status"], "deployed", "{again}\n{log}");
    assert!(
        events.contains(&"install_skipped".to_owned()),
        "{events:?}\n{log}"
    );
    let html = page(&app, &again).await;
    assert!(html.contains("Hello again from the lib"), "{html}");
}
