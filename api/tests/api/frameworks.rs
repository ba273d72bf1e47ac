//! Projects of the frameworks an AI generator writes, built for real (real pnpm, the real
//! registry, the sandbox): a static site from each, or a refusal that says what to change.

use serde_json::Value;

use crate::helpers::{build_body, spawn_app, tree, unique, Options, TestApp};

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

/// Where a deployed fixture's marker text is: in the page itself (rendered at build time) or
/// only in the script that renders it in the browser (a single-page app).
#[derive(Clone, Copy, PartialEq)]
enum Marker {
    InPage,
    InScript,
}

/// Builds fixture `name` for real and checks it deployed as `framework`: the preview at `/`
/// serves the page the app renders (`marker`) and the assets it references. Returns the app
/// and the build's id.
async fn deploys(name: &str, framework: &str, marker: &str, at: Marker) -> (TestApp, String) {
    let started = std::time::Instant::now();
    let app = spawn_app(Options {
        shared_store: true,
        ..Options::default()
    })
    .await;
    let id = app
        .submit(&build_body(
            "u_frameworks",
            &unique(name),
            tree(&format!("api/tests/fixtures/{name}")),
        ))
        .await;
    let build: Value = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{name}: {build}");
    assert_eq!(build["framework"], framework, "{name}: {build}");

    let page = app.preview(&id, "/").await;
    assert_eq!(page.status(), 200, "{name}");
    let html = page.text().await.unwrap();
    assert!(html.contains("<html"), "{name}: {html}");
    let assets = assets_of(&html);
    assert!(!assets.is_empty(), "{name}: no script or stylesheet in {html}");
    let mut marker_in_script = false;
    for asset in &assets {
        let response = app.preview(&id, asset).await;
        assert_eq!(response.status(), 200, "{name}: {asset}");
        let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
        let body = response.text().await.unwrap();
        assert!(!body.is_empty(), "{name}: {asset} is empty");
        match asset.ends_with(".css") {
            true => assert_eq!(kind, "text/css; charset=utf-8", "{name}: {asset}"),
            false => assert_eq!(kind, "text/javascript; charset=utf-8", "{name}: {asset}"),
        }
        marker_in_script |= body.contains(marker);
    }
    match at {
        Marker::InPage => assert!(html.contains(marker), "{name}: {html}"),
        Marker::InScript => assert!(marker_in_script, "{name}: {marker} in none of {assets:?}"),
    }
    eprintln!("{name}: deployed as {framework} in {:.1?}", started.elapsed());
    (app, id)
}

/// The scripts and stylesheets a page references on its own site (`/x` or `./x`, as `/x`).
fn assets_of(html: &str) -> Vec<String> {
    let mut assets: Vec<String> = html
        .split(['"', '\''])
        .filter(|s| s.ends_with(".js") || s.ends_with(".css"))
        .filter_map(|s| match s.strip_prefix('.') {
            Some(rest) if rest.starts_with('/') => Some(rest.to_owned()),
            Some(_) => None,
            None => (s.starts_with('/') && !s.starts_with("//")).then(|| s.to_owned()),
        })
        .collect();
    assets.sort();
    assets.dedup();
    assets
}

/// Builds fixture `name` for real and checks it failed at `output` with a message holding
/// each of `advice`, and that nothing of it is served.
async fn is_refused(name: &str, advice: &[&str]) {
    let started = std::time::Instant::now();
    let app = spawn_app(Options {
        shared_store: true,
        ..Options::default()
    })
    .await;
    let id = app
        .submit(&build_body(
            "u_frameworks",
            &unique(name),
            tree(&format!("api/tests/fixtures/{name}")),
        ))
        .await;
    let build: Value = app.wait(&id).await;
    assert_eq!(build["status"], "failed", "{name}: {build}");
    assert_eq!(build["failedStep"], "output", "{name}: {build}");
    let error = build["error"].as_str().unwrap();
    for words in advice {
        assert!(error.contains(words), "{name}: {words:?} not in {error}");
    }
    assert_eq!(app.preview(&id, "/").await.status(), 404, "{name}");
    assert_eq!(app.preview(&id, "/index.html").await.status(), 404, "{name}");
    eprintln!("{name}: refused in {:.1?}", started.elapsed());
}

#[tokio::test]
async fn a_vite_react_app_deploys_its_dist() {
    deploys(
        "vite-react",
        "vite",
        "Built by Kiln from Vite React",
        Marker::InScript,
    )
    .await;
}

#[tokio::test]
async fn a_vite_vue_app_deploys_its_dist() {
    deploys(
        "vite-vue",
        "vite",
        "Built by Kiln from Vite Vue",
        Marker::InScript,
    )
    .await;
}

#[tokio::test]
async fn a_vite_svelte_app_deploys_its_dist() {
    deploys(
        "vite-svelte",
        "vite",
        "Built by Kiln from Vite Svelte",
        Marker::InScript,
    )
    .await;
}

#[tokio::test]
async fn a_nextjs_app_with_static_export_deploys_its_out_folder() {
    deploys(
        "next-export",
        "next",
        "Built by Kiln from Next.js export",
        Marker::InPage,
    )
    .await;
}

#[tokio::test]
async fn a_sveltekit_app_with_adapter_static_deploys_its_build_folder() {
    deploys(
        "sveltekit-static",
        "sveltekit",
        "Built by Kiln from SvelteKit static",
        Marker::InPage,
    )
    .await;
}

#[tokio::test]
async fn a_sveltekit_app_with_the_default_adapter_auto_is_refused() {
    is_refused(
        "sveltekit-auto",
        &["this SvelteKit app needs a server", "@sveltejs/adapter-static"],
    )
    .await;
}

#[tokio::test]
async fn a_static_astro_site_deploys_its_dist() {
    deploys(
        "astro-static",
        "astro",
        "Built by Kiln from Astro static",
        Marker::InPage,
    )
    .await;
}

#[tokio::test]
async fn an_astro_app_rendered_on_a_node_server_is_refused() {
    is_refused(
        "astro-server",
        &["this Astro app renders on a server", "output: 'static'"],
    )
    .await;
}

/// Nuxt's own `postinstall` (`nuxt prepare`) runs in the build's half of the install;
/// `nuxt generate` prerenders the site into `.output/public`.
#[tokio::test]
async fn a_nuxt_app_built_with_nuxt_generate_deploys_its_output_public() {
    let (app, id) = deploys(
        "nuxt-generate",
        "nuxt",
        "Built by Kiln from Nuxt generate",
        Marker::InPage,
    )
    .await;
    let log = app.log_text(&id).await;
    assert!(log.contains("nuxt prepare"), "{log}");
    assert!(log.contains("nuxt generate"), "{log}");
    // Nuxt also links dist/ to .output/public (by an absolute path): not what is published.
    assert_eq!(app.preview(&id, "/dist/index.html").await.status(), 404);
}
