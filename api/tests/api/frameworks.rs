//! Projects of the frameworks an AI generator writes, built for real (real pnpm, the real
//! registry, the sandbox): a static site from each, or a refusal that says what to change.

use serde_json::Value;

use crate::helpers::{build_body, spawn_app, tree, unique, Options};

/// A default Next.js app (`app/page.js`, `next build`, no `output: 'export'`) writes `.next/`
/// for a server and no `out/`. Kiln used to fall back to its source `public/` folder and record
/// the build `deployed`, serving a 404 at `/`; it is refused at `output`, saying what to change,
/// and nothing is published.
#[tokio::test]
async fn a_default_nextjs_app_is_refused_at_output_saying_what_to_change() {
    let app = spawn_app(Options {
        shared_store: true,
        ..Options::default()
    })
    .await;
    let project = unique("next");
    let id = app
        .submit(&build_body(
            "u_next",
            &project,
            tree("api/tests/fixtures/next-default"),
        ))
        .await;
    let build: Value = app.wait(&id).await;
    assert_eq!(build["status"], "failed", "{build}");
    assert_eq!(build["failedStep"], "output", "{build}");
    let error = build["error"].as_str().unwrap();
    assert!(
        error.contains("this Next.js app needs a server") && error.contains("output: 'export'"),
        "{error}"
    );
    // The build itself ran: next wrote its server build before the refusal.
    let log = app.log_text(&id).await;
    assert!(log.contains("next build") || log.contains("Next.js"), "{log}");
    assert_eq!(app.preview(&id, "/").await.status(), 404);
    assert_eq!(app.preview(&id, "/next.svg").await.status(), 404);
}
