//! Builds that follow their settings (`settings` of a build request, merged over the
//! project's), built for real: real pnpm, the real registry, the sandbox. `rootDir` in a
//! two-package pnpm workspace, the project's own `buildCommand`, `installCommand` and
//! `outputDir`, and the failures that say which setting is wrong.

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, tree, unique, Options, TestApp};

async fn app() -> TestApp {
    spawn_app(Options {
        shared_store: true,
        ..Options::default()
    })
    .await
}

/// A build request of fixture `fixture` for `user`'s new project, with `settings`.
fn with_settings(user: &str, fixture: &str, settings: Value) -> (String, Value) {
    let project = unique(fixture);
    let mut body = build_body(user, &project, tree(&format!("api/tests/fixtures/{fixture}")));
    body["settings"] = settings;
    (project, body)
}

/// The page at `/` of a deployed build.
async fn page(app: &TestApp, id: &str) -> String {
    let page = app.preview(id, "/").await;
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

/// The code of the one diagnostic Kiln recorded for a failure.
fn kiln_code(build: &Value) -> &str {
    let d = &build["diagnostics"][0];
    assert_eq!(d["tool"], "kiln", "{build}");
    d["code"].as_str().unwrap()
}

/// A pnpm workspace (`pnpm-workspace.yaml` at the top, `packages/lib`, `apps/web` depending on
/// it through `workspace:*`) built with `rootDir: apps/web`: one install at the top, the build
/// in `apps/web`, its `dist/` published and recorded from the top of the tree; the workspace's
/// lockfile kept at the top; a rebuild with the same package.json files installs frozen.
#[tokio::test]
async fn a_workspace_app_in_root_dir_builds_with_its_workspace_package() {
    // Without warm dependency trees, which would skip the rebuild's install (warm_trees.rs
    // rebuilds this workspace with them).
    let app = spawn_app(Options {
        shared_store: true,
        env: vec![("KILN_DEP_CACHE_MB", "off".into())],
        ..Options::default()
    })
    .await;
    let (project, body) = with_settings(
        "u_settings",
        "settings-workspace",
        json!({ "rootDir": "apps/web" }),
    );
    let id = app.submit(&body).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(build["outputDir"], "apps/web/dist", "{build}");
    assert_eq!(build["settings"], json!({ "rootDir": "apps/web" }), "{build}");
    let html = page(&app, &id).await;
    assert!(html.contains("Hello from the workspace's lib package"), "{html}");
    let log = app.log_text(&id).await;
    assert!(
        log.contains("pnpm-workspace.yaml at the top of the tree: installing the workspace there, building in apps/web/"),
        "{log}"
    );
    let files = app
        .get_json(&format!("/v1/projects/u_settings/{project}/versions/{id}/files"))
        .await;
    let paths: Vec<&str> = files["source"]
        .as_array()
        .unwrap_or_else(|| panic!("{files}"))
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert!(paths.contains(&"pnpm-lock.yaml"), "{files}");
    assert!(!paths.contains(&"apps/web/pnpm-lock.yaml"), "{files}");

    // A rebuild changing no package.json: the kept lockfile freezes the install.
    let rebuild = json!({ "userId": "u_settings", "projectId": project,
        "files": [{ "path": "packages/lib/index.js",
                    "content": "export const greeting = \"Hello again from the lib\";\n" }],
        "settings": { "rootDir": "apps/web" } });
    let again = app.submit(&rebuild).await;
    let build = app.wait(&again).await;
    assert_eq!(build["status"], "deployed", "{build}");
    let html = page(&app, &again).await;
    assert!(html.contains("Hello again from the lib"), "{html}");
    let frozen = app
        .final_events(&again)
        .await
        .into_iter()
        .find(|e| e["type"] == "install_started")
        .unwrap_or_else(|| panic!("no install_started event"));
    assert_eq!(frozen["data"]["frozenLockfile"], true, "{frozen}");
}

/// `buildCommand` runs instead of `pnpm run build` (the project has no build script) and
/// `outputDir` names the folder it wrote; a failing command is named in the error.
#[tokio::test]
async fn build_command_and_output_dir_publish_what_the_command_wrote() {
    let app = app().await;
    let settings = json!({ "buildCommand": "node build.mjs", "outputDir": "public" });
    let (_, body) = with_settings("u_settings", "settings-commands", settings.clone());
    let id = app.submit(&body).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(build["outputDir"], "public", "{build}");
    assert_eq!(build["settings"], settings, "{build}");
    let html = page(&app, &id).await;
    assert!(
        html.contains("Built by the build command: nothing prepared"),
        "{html}"
    );
    let log = app.log_text(&id).await;
    assert!(
        log.contains("[kiln] running settings.buildCommand: node build.mjs"),
        "{log}"
    );

    let (_, body) = with_settings(
        "u_settings",
        "settings-commands",
        json!({ "buildCommand": "node build.mjs && exit 3" }),
    );
    let id = app.submit(&body).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "failed", "{build}");
    assert_eq!(build["failedStep"], "build", "{build}");
    let error = build["error"].as_str().unwrap();
    assert!(
        error.starts_with("`node build.mjs && exit 3` exited with status 3"),
        "{error}"
    );
}

/// `rootDir` without a workspace: the app's folder is installed and built on its own, its
/// lockfile kept with the sources under that folder, and the output recorded from the top.
#[tokio::test]
async fn a_root_dir_without_a_workspace_installs_and_builds_there() {
    let app = app().await;
    let project = unique("settings-site");
    let mut files = tree("api/tests/fixtures/settings-commands");
    for file in files.as_array_mut().unwrap() {
        let path = format!("site/{}", file["path"].as_str().unwrap());
        file["path"] = json!(path);
    }
    files
        .as_array_mut()
        .unwrap()
        .push(json!({ "path": "README.md", "content": "the top\n" }));
    let mut body = build_body("u_settings", &project, files);
    body["settings"] = json!({ "rootDir": "site", "buildCommand": "node build.mjs", "outputDir": "public" });
    let id = app.submit(&body).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(build["outputDir"], "site/public", "{build}");
    let html = page(&app, &id).await;
    assert!(html.contains("Built by the build command"), "{html}");
    let files = app
        .get_json(&format!("/v1/projects/u_settings/{project}/versions/{id}/files"))
        .await;
    let paths: Vec<&str> = files["source"]
        .as_array()
        .unwrap_or_else(|| panic!("{files}"))
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert!(paths.contains(&"site/pnpm-lock.yaml"), "{files}");
    assert!(!paths.contains(&"pnpm-lock.yaml"), "{files}");
}

/// `installCommand` runs after the install and before the build, as the build's own user: the
/// file it writes is in the page the build command made, with the same uid.
#[tokio::test]
async fn install_command_runs_before_the_build_as_the_build() {
    let app = app().await;
    let (_, body) = with_settings(
        "u_settings",
        "settings-commands",
        json!({ "installCommand": "node prepare.mjs", "buildCommand": "node build.mjs",
                "outputDir": "public" }),
    );
    let id = app.submit(&body).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    let html = page(&app, &id).await;
    let uid = |after: &str| -> String {
        let at = html.find(after).unwrap_or_else(|| panic!("{after} in {html}")) + after.len();
        html[at..].chars().take_while(char::is_ascii_digit).collect()
    };
    let (prepared, built) = (uid("prepared by uid "), uid("built by uid "));
    assert!(!prepared.is_empty(), "{html}");
    assert_eq!(prepared, built, "{html}");
    let log = app.log_text(&id).await;
    let (install, build_at) = (
        log.find("[kiln] running settings.installCommand: node prepare.mjs"),
        log.find("[kiln] running settings.buildCommand: node build.mjs"),
    );
    assert!(
        install.is_some() && install < build_at,
        "the install command first: {log}"
    );
}

/// `outputDir` naming a folder the build did not write (it came with the sources) fails at
/// `output` with `no_output`, naming the folder; so does one that does not exist.
#[tokio::test]
async fn an_output_dir_the_build_did_not_write_fails_at_output() {
    let app = app().await;
    for (dir, says) in [
        ("static", "settings.outputDir static/ is not the build's output"),
        (
            "nowhere",
            "settings.outputDir nowhere/ does not exist after the build",
        ),
    ] {
        let (_, body) = with_settings(
            "u_settings",
            "settings-commands",
            json!({ "buildCommand": "node build.mjs", "outputDir": dir }),
        );
        let id = app.submit(&body).await;
        let build = app.wait(&id).await;
        assert_eq!(build["status"], "failed", "{build}");
        assert_eq!(build["failedStep"], "output", "{build}");
        assert!(build["error"].as_str().unwrap().contains(says), "{build}");
        assert_eq!(kiln_code(&build), "no_output", "{build}");
        assert_eq!(app.preview(&id, "/").await.status(), 404);
    }
}

/// A `rootDir` that is no folder of the tree, or one without package.json, fails at `fetch`
/// saying so.
#[tokio::test]
async fn a_missing_root_dir_fails_at_fetch_saying_so() {
    let app = app().await;
    for (dir, says) in [
        (
            "apps/missing",
            "settings.rootDir apps/missing/ is not a folder of the sources",
        ),
        ("static", "settings.rootDir static/ has no package.json"),
        (
            "build.mjs",
            "settings.rootDir build.mjs/ is not a folder of the sources",
        ),
    ] {
        let (_, body) = with_settings("u_settings", "settings-commands", json!({ "rootDir": dir }));
        let id = app.submit(&body).await;
        let build = app.wait(&id).await;
        assert_eq!(build["status"], "failed", "{build}");
        assert_eq!(build["failedStep"], "fetch", "{build}");
        let error = build["error"].as_str().unwrap();
        assert!(error.contains(says), "{error}");
        assert!(
            !error.contains("kiln-builds") && !error.contains("/project"),
            "{error}"
        );
        assert_eq!(kiln_code(&build), "root_dir_missing", "{build}");
    }
}

/// Settings saved on the project (`PATCH`) apply to every build of it without the request
/// saying so, a request's one-off settings win over them for that build only, each version
/// records what it ran with, and the project's default checks run when a request names none.
#[tokio::test]
async fn the_projects_settings_apply_to_its_builds_and_a_request_overrides_them_once() {
    let app = app().await;
    let (user, project) = ("u_settings", unique("saved"));
    let (status, saved) = app
        .send_json(
            "PATCH",
            &format!("/v1/projects/{user}/{project}"),
            &json!({ "buildCommand": "node build.mjs", "outputDir": "public" }),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    let body = build_body(user, &project, tree("api/tests/fixtures/settings-commands"));
    let id = app.submit(&body).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(
        build["settings"],
        json!({ "buildCommand": "node build.mjs", "outputDir": "public" })
    );
    assert!(page(&app, &id).await.contains("Built by the build command"));

    // One build's override: the project's buildCommand, this build's outputDir (which the
    // command did not write: the override really was used).
    let mut once =
        json!({ "userId": user, "projectId": project, "files": [{ "path": "note.txt", "content": "x" }] });
    once["settings"] = json!({ "outputDir": "static" });
    let id = app.submit(&once).await;
    let build = app.wait(&id).await;
    assert_eq!(
        build["settings"],
        json!({ "buildCommand": "node build.mjs", "outputDir": "static" }),
        "{build}"
    );
    assert_eq!(build["status"], "failed", "{build}");
    assert_eq!(kiln_code(&build), "no_output", "{build}");
    // The next build has the project's settings again.
    let again =
        json!({ "userId": user, "projectId": project, "files": [{ "path": "note.txt", "content": "y" }] });
    let id = app.submit(&again).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(build["outputDir"], "public", "{build}");

    // Default checks: a typecheck in fail mode the request did not ask for.
    let (checked, ts) = ("u_settings", unique("checked"));
    let (status, _) = app
        .send_json(
            "PATCH",
            &format!("/v1/projects/{checked}/{ts}"),
            &json!({ "checks": { "typecheck": "fail" } }),
        )
        .await;
    assert_eq!(status, 200);
    let id = app
        .submit(&build_body(checked, &ts, tree("api/tests/fixtures/checks-ts")))
        .await;
    let build = app.wait(&id).await;
    assert_eq!(
        build["checks"],
        json!({ "typecheck": "fail", "lint": "off" }),
        "{build}"
    );
    assert_eq!(build["status"], "failed", "{build}");
    assert_eq!(build["failedStep"], "check", "{build}");
    // A request that names its checks runs those.
    let mut body = build_body(checked, &unique("checked"), tree("api/tests/fixtures/checks-ts"));
    body["projectId"] = json!(ts);
    body["checks"] = json!({ "typecheck": "off" });
    let id = app.submit(&body).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
}
