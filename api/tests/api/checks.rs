//! The checks a build may ask for (`checks: {typecheck, lint}`), run for real after the install
//! and before the build script: the project's own `tsc` and ESLint, in the sandbox. The
//! fixture builds with `vite build` (which strips types without checking them), has a type
//! error in `src/main.ts` and an unused variable in `src/util.js`.

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, tree, unique, Options, TestApp};

fn with_checks(user: &str, checks: Value) -> Value {
    let mut body = build_body(user, &unique("checks"), tree("api/tests/fixtures/checks-ts"));
    body["checks"] = checks;
    body
}

/// The diagnostic of `tool` in `build`, as `(file, line, column, code)`.
fn found(build: &Value, tool: &str) -> (Value, Value, Value, Value) {
    let d = build["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["tool"] == tool)
        .unwrap_or_else(|| panic!("no {tool} diagnostic: {build}"));
    assert_eq!(d["step"], "check", "{d}");
    (
        d["file"].clone(),
        d["line"].clone(),
        d["column"].clone(),
        d["code"].clone(),
    )
}

async fn event_types(app: &TestApp, id: &str) -> Vec<String> {
    app.final_events(id)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn checks_in_fail_mode_fail_the_build_at_check_with_every_problem_at_once() {
    let app = spawn_app(Options {
        shared_store: true,
        ..Options::default()
    })
    .await;
    let id = app
        .submit(&with_checks(
            "u_checks",
            json!({"typecheck": "fail", "lint": "fail"}),
        ))
        .await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "failed", "{build}");
    assert_eq!(build["failedStep"], "check", "{build}");
    assert_eq!(
        found(&build, "tsc"),
        (json!("src/main.ts"), json!(2), json!(7), json!("TS2322"))
    );
    assert_eq!(
        found(&build, "eslint"),
        (json!("src/util.js"), json!(3), json!(9), json!("no-unused-vars"))
    );
    let error = build["error"].as_str().unwrap();
    assert!(error.starts_with("typecheck and lint failed"), "{error}");
    assert!(error.contains("src/main.ts:2:7"), "{error}");
    assert!(
        !error.contains("kiln-builds") && !error.contains("/project/"),
        "{error}"
    );
    assert!(build["metrics"]["checkMs"].as_i64().unwrap() > 0, "{build}");
    assert_eq!(build["checks"], json!({"typecheck": "fail", "lint": "fail"}));
    let types = event_types(&app, &id).await;
    let at = |t: &str| {
        types
            .iter()
            .position(|x| x == t)
            .unwrap_or_else(|| panic!("{t} in {types:?}"))
    };
    assert!(at("install_completed") < at("check_started") && at("check_started") < at("check_completed"));
    assert!(!types.contains(&"build_step_started".to_owned()), "{types:?}");
}

#[tokio::test]
async fn checks_in_warn_mode_deploy_and_keep_what_they_found_on_the_version() {
    let app = spawn_app(Options {
        shared_store: true,
        ..Options::default()
    })
    .await;
    let id = app
        .submit(&with_checks(
            "u_checks",
            json!({"typecheck": "warn", "lint": "warn"}),
        ))
        .await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(build["diagnosticsTotal"], 2, "{build}");
    assert_eq!(found(&build, "tsc").3, json!("TS2322"));
    assert_eq!(found(&build, "eslint").3, json!("no-unused-vars"));
    let page = app.preview(&id, "/").await.text().await.unwrap();
    assert!(page.contains("checks-ts"), "{page}");
    let completed = app
        .final_events(&id)
        .await
        .into_iter()
        .find(|e| e["type"] == "check_completed")
        .unwrap();
    assert_eq!(
        (&completed["data"]["typecheck"], &completed["data"]["lint"]),
        (&json!("failed"), &json!("failed")),
        "{completed}"
    );
}

/// A project without what a check needs is not a failed check: a warning says what is missing.
#[tokio::test]
async fn a_check_the_project_cannot_run_is_skipped_with_a_warning_saying_why() {
    let app = spawn_app(Options::default()).await;
    let files = json!([
        { "path": "package.json", "content": "{\"scripts\": {\"build\": \"mkdir -p dist && echo '<p>plain</p>' > dist/index.html\"}}" },
    ]);
    let mut body = build_body("u_checks", &unique("plain"), files);
    body["checks"] = json!({"typecheck": "fail", "lint": "warn"});
    let id = app.submit(&body).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    let codes: Vec<&str> = build["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["severity"], "warning", "{d}");
            d["code"].as_str().unwrap()
        })
        .collect();
    assert_eq!(codes, ["typecheck_no_tsconfig", "lint_no_config"]);
}

#[tokio::test]
async fn a_check_mode_kiln_does_not_know_is_refused_naming_it() {
    let app = spawn_app(Options::without_builders()).await;
    for (checks, says) in [
        (
            json!({"typecheck": "strict"}),
            "checks.typecheck must be \"off\", \"warn\" or \"fail\", not \"strict\"",
        ),
        (json!({"tests": "fail"}), "checks.tests is not a check Kiln runs"),
        (json!(["typecheck"]), "checks must be an object"),
    ] {
        let mut body = build_body(
            "u_checks",
            &unique("bad"),
            json!([{ "path": "index.html", "content": "x" }]),
        );
        body["checks"] = checks;
        let answer = app.post_build(&body).await;
        assert_eq!(answer.status(), 422);
        let problem: Value = answer.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap_or_default().contains(says)
                || problem.to_string().contains(says),
            "{problem}"
        );
    }
}
