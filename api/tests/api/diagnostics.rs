//! Broken projects built for real (real pnpm, the real registry, the sandbox), one per tool: the
//! failed build's diagnostics name the tool, the file relative to the project, the line, the
//! column and the tool's code, as the tool itself printed them; the short `error` names no
//! folder of the builder's. The projects are in `api/tests/fixtures/broken/` (their README says
//! what each gives); the parsers' unit tests use captures of the same tools' output.

use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, tree, unique, Options};

/// What one broken project must give: its first diagnostic of `tool`.
struct Expect {
    step: &'static str,
    tool: &'static str,
    file: &'static str,
    line: Option<u32>,
    column: Option<u32>,
    code: Option<&'static str>,
    message: &'static str,
}

async fn builds_broken(fixture: &str, checks: Option<Value>, want: Expect) {
    let app = spawn_app(Options {
        shared_store: true,
        ..Options::default()
    })
    .await;
    let mut body = build_body(
        "u_broken",
        &unique(fixture),
        tree(&format!("api/tests/fixtures/broken/{fixture}")),
    );
    if let Some(checks) = checks {
        body["checks"] = checks;
    }
    let id = app.submit(&body).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "failed", "{build}");
    assert_eq!(build["failedStep"], want.step, "{build}");
    let all = build["diagnostics"]
        .as_array()
        .expect("diagnostics on a failed build");
    assert!(
        build["diagnosticsTotal"].as_u64().unwrap() as usize >= all.len() && !all.is_empty(),
        "{build}"
    );
    let d = all
        .iter()
        .find(|d| d["tool"] == want.tool)
        .unwrap_or_else(|| panic!("no {} diagnostic in {}", want.tool, json!(all)));
    let got = (&d["step"], &d["file"], &d["line"], &d["column"], &d["code"]);
    let expected = (
        &json!(want.step),
        &json!(want.file),
        &json!(want.line),
        &json!(want.column),
        &json!(want.code),
    );
    assert_eq!(got, expected, "{d}");
    let message = d["message"].as_str().unwrap();
    assert!(message.contains(want.message), "{message}");
    // Nothing a build is told names the builder's folders.
    let said = build.to_string();
    for builder_path in ["kiln-builds", "/project/", "/work/"] {
        assert!(!said.contains(builder_path), "{builder_path} in {said}");
    }
    let error = build["error"].as_str().unwrap();
    assert!(error.len() < 2048, "a short summary: {error}");
}

/// One test per broken project: `name, fixture, checks, step, tool, file, line, column, code,
/// the message's start`.
macro_rules! broken {
    ($($name:ident: $fixture:literal, $checks:expr, $step:literal, $tool:literal, $file:literal,
       $line:expr, $column:expr, $code:expr, $message:literal;)+) => {$(
        #[tokio::test]
        async fn $name() {
            let want = Expect {
                step: $step,
                tool: $tool,
                file: $file,
                line: $line,
                column: $column,
                code: $code,
                message: $message,
            };
            builds_broken($fixture, $checks, want).await;
        }
    )+};
}

broken! {
    tsc_type_error: "tsc-type-error", None, "build", "tsc", "src/App.tsx",
        Some(3), Some(9), Some("TS2322"), "Type 'number' is not assignable to type 'string'.";
    vite_unresolved_import: "vite7-unresolved-import", None, "build", "vite", "src/main.ts",
        None, None, Some("UNRESOLVED_IMPORT"), "failed to resolve import \"canvas-confetti\"";
    esbuild_syntax_error: "esbuild-syntax-error", None, "build", "esbuild", "src/greet.ts",
        Some(3), Some(2), None, "Expected \"]\" but found \"return\"";
    rollup_missing_export: "rollup-missing-export", None, "build", "rollup", "src/main.ts",
        Some(1), Some(16), Some("MISSING_EXPORT"), "\"farewell\" is not exported by \"src/greet.ts\"";
    next_type_error: "next-type-error", None, "build", "next", "app/page.tsx",
        Some(2), Some(9), Some("type-error"), "Type 'string' is not assignable to type 'number'.";
    sveltekit_compile_error: "sveltekit-compile-error", None, "build", "sveltekit", "src/routes/+page.svelte",
        Some(8), Some(1), Some("element_invalid_closing_tag"), "attempted to close an element that was not open";
    astro_compile_error: "astro-compile-error", None, "build", "astro", "src/pages/index.astro",
        Some(3), Some(15), None, "Unexpected \";\"";
    // ESLint through the lint check (the project's build passes).
    eslint_error_in_the_lint_check: "eslint-error", Some(json!({"lint": "fail"})), "check", "eslint", "src/main.js",
        Some(3), Some(7), Some("no-unused-vars"), "'unused' is assigned a value but never used";
    pnpm_no_matching_version: "pnpm-no-matching-version", None, "install", "pnpm", "package.json",
        Some(10), None, Some("ERR_PNPM_NO_MATCHING_VERSION"), "No matching version found for react@^99.0.0";
    pnpm_unknown_package: "pnpm-unknown-package", None, "install", "pnpm", "package.json",
        Some(10), None, Some("ERR_PNPM_FETCH_404"), "react-super-fancy-confetti-kiln-missing";
    node_stack_trace_in_a_build_script: "node-stack-trace", None, "build", "node", "scripts/build.js",
        Some(5), Some(11), None, "Error: page / has no title";
}
