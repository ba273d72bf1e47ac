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

#[tokio::test]
async fn tsc_type_error() {
    let want = Expect {
        step: "build",
        tool: "tsc",
        file: "src/App.tsx",
        line: Some(3),
        column: Some(9),
        code: Some("TS2322"),
        message: "Type 'number' is not assignable to type 'string'.",
    };
    builds_broken("tsc-type-error", None, want).await;
}

#[tokio::test]
async fn vite_unresolved_import() {
    let want = Expect {
        step: "build",
        tool: "vite",
        file: "src/main.ts",
        line: None,
        column: None,
        code: Some("UNRESOLVED_IMPORT"),
        message: "failed to resolve import \"canvas-confetti\"",
    };
    builds_broken("vite7-unresolved-import", None, want).await;
}

#[tokio::test]
async fn esbuild_syntax_error() {
    let want = Expect {
        step: "build",
        tool: "esbuild",
        file: "src/greet.ts",
        line: Some(3),
        column: Some(2),
        code: None,
        message: "Expected \"]\" but found \"return\"",
    };
    builds_broken("esbuild-syntax-error", None, want).await;
}

#[tokio::test]
async fn rollup_missing_export() {
    let want = Expect {
        step: "build",
        tool: "rollup",
        file: "src/main.ts",
        line: Some(1),
        column: Some(16),
        code: Some("MISSING_EXPORT"),
        message: "\"farewell\" is not exported by \"src/greet.ts\"",
    };
    builds_broken("rollup-missing-export", None, want).await;
}

#[tokio::test]
async fn next_type_error() {
    let want = Expect {
        step: "build",
        tool: "next",
        file: "app/page.tsx",
        line: Some(2),
        column: Some(9),
        code: Some("type-error"),
        message: "Type 'string' is not assignable to type 'number'.",
    };
    builds_broken("next-type-error", None, want).await;
}

#[tokio::test]
async fn sveltekit_compile_error() {
    let want = Expect {
        step: "build",
        tool: "sveltekit",
        file: "src/routes/+page.svelte",
        line: Some(8),
        column: Some(1),
        code: Some("element_invalid_closing_tag"),
        message: "attempted to close an element that was not open",
    };
    builds_broken("sveltekit-compile-error", None, want).await;
}

#[tokio::test]
async fn astro_compile_error() {
    let want = Expect {
        step: "build",
        tool: "astro",
        file: "src/pages/index.astro",
        line: Some(3),
        column: Some(15),
        code: None,
        message: "Unexpected \";\"",
    };
    builds_broken("astro-compile-error", None, want).await;
}

/// ESLint through the lint check (the project's build passes).
#[tokio::test]
async fn eslint_error_in_the_lint_check() {
    let want = Expect {
        step: "check",
        tool: "eslint",
        file: "src/main.js",
        line: Some(3),
        column: Some(7),
        code: Some("no-unused-vars"),
        message: "'unused' is assigned a value but never used",
    };
    builds_broken("eslint-error", Some(json!({"lint": "fail"})), want).await;
}

#[tokio::test]
async fn pnpm_no_matching_version() {
    let want = Expect {
        step: "install",
        tool: "pnpm",
        file: "package.json",
        line: Some(10),
        column: None,
        code: Some("ERR_PNPM_NO_MATCHING_VERSION"),
        message: "No matching version found for react@^99.0.0",
    };
    builds_broken("pnpm-no-matching-version", None, want).await;
}

#[tokio::test]
async fn pnpm_unknown_package() {
    let want = Expect {
        step: "install",
        tool: "pnpm",
        file: "package.json",
        line: Some(10),
        column: None,
        code: Some("ERR_PNPM_FETCH_404"),
        message: "react-super-fancy-confetti-kiln-missing",
    };
    builds_broken("pnpm-unknown-package", None, want).await;
}

#[tokio::test]
async fn node_stack_trace_in_a_build_script() {
    let want = Expect {
        step: "build",
        tool: "node",
        file: "scripts/build.js",
        line: Some(5),
        column: Some(11),
        code: None,
        message: "Error: page / has no title",
    };
    builds_broken("node-stack-trace", None, want).await;
}
