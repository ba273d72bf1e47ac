//! The rules of [`output_dir`] on folders made in temporary directories, as builds leave them.

use super::*;
use serde_json::json;

#[test]
fn frameworks_and_their_folders() {
    let vite = json!({"devDependencies": {"vite": "^6", "react": "19"}});
    assert_eq!(framework_of(&vite), Some(("vite", "dist")));
    let next = json!({"dependencies": {"next": "15", "react": "19"}, "devDependencies": {"vite": "1"}});
    assert_eq!(framework_of(&next), Some(("next", "out")));
    assert_eq!(
        framework_of(&json!({"dependencies": {"react-scripts": "5"}})),
        Some(("cra", "build"))
    );
    assert_eq!(framework_of(&json!({})), None);
}

fn open(path: &std::path::Path) -> std::os::fd::OwnedFd {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap()
}

#[test]
fn falls_back_to_scanning_then_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let fd = open(dir.path());
    let vite = json!({"devDependencies": {"vite": "6"}});
    let err = output_dir(&fd, &vite, None).unwrap_err();
    assert_eq!(
        err,
        "no output folder found after the build: looked for dist (for vite), dist, build, out, public"
    );
    std::fs::create_dir(dir.path().join("public")).unwrap();
    assert_eq!(output_dir(&fd, &vite, None).unwrap().dir, "public");
    std::fs::create_dir(dir.path().join("dist")).unwrap();
    assert_eq!(output_dir(&fd, &vite, None).unwrap().dir, "dist");
}

#[test]
fn a_linked_folder_counts_when_it_leads_to_a_folder_or_out() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("site")).unwrap();
    std::fs::write(project.join("index.html"), "x").unwrap();
    let fd = open(&project);
    let none = json!({});
    // A link to a file, or to nothing, is no output folder.
    symlink("index.html", project.join("dist")).unwrap();
    symlink("nothing", project.join("build")).unwrap();
    assert!(output_dir(&fd, &none, None).is_err());
    // A link to a folder inside is one.
    symlink("site", project.join("out")).unwrap();
    assert_eq!(output_dir(&fd, &none, None).unwrap().dir, "out");
    // A link out is found, so that opening it fails and says why.
    std::fs::remove_file(project.join("build")).unwrap();
    symlink("/root", project.join("build")).unwrap();
    assert_eq!(output_dir(&fd, &none, None).unwrap().dir, "build");
    assert_eq!(
        beneath::open_dir_beneath(&fd, "build").unwrap_err().to_string(),
        "build is a symbolic link that leaves the project"
    );
}

/// A moment after everything made so far, and before anything made next (file times come
/// from the kernel's coarse clock, a few milliseconds behind `SystemTime::now`).
fn a_moment() -> SystemTime {
    std::thread::sleep(Duration::from_millis(30));
    let t = SystemTime::now();
    std::thread::sleep(Duration::from_millis(30));
    t
}

#[test]
fn a_source_folder_the_build_did_not_write_is_not_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let fd = open(dir.path());
    let vite = json!({"devDependencies": {"vite": "6"}});
    // The sources have public/ (Vite copies it into dist/); the build wrote nothing.
    std::fs::create_dir_all(dir.path().join("public/img")).unwrap();
    std::fs::write(dir.path().join("public/img/logo.svg"), "<svg/>").unwrap();
    let since = a_moment();
    let err = output_dir(&fd, &vite, Some(since)).unwrap_err();
    assert!(
        err.ends_with("; public came with the sources and the build wrote nothing in it, so it is not the build's output"),
        "{err}"
    );
    // Without a build script, the sources are the site: public/ is published as it is.
    assert_eq!(output_dir(&fd, &vite, None).unwrap().dir, "public");
    // The build writes dist/: that is the output, once it has a page at its root.
    std::fs::create_dir(dir.path().join("dist")).unwrap();
    assert_eq!(
        output_dir(&fd, &vite, Some(since)).unwrap_err(),
        "the build's output folder dist/ has no index.html at its root, so its preview would have no page at /"
    );
    std::fs::write(dir.path().join("dist/index.html"), "<h1>hi</h1>").unwrap();
    assert_eq!(output_dir(&fd, &vite, Some(since)).unwrap().dir, "dist");
}

#[test]
fn a_committed_output_folder_counts_once_the_build_writes_in_it_at_any_depth() {
    let dir = tempfile::tempdir().unwrap();
    let fd = open(dir.path());
    let none = json!({});
    std::fs::create_dir_all(dir.path().join("build/assets/js")).unwrap();
    std::fs::write(dir.path().join("build/assets/js/app.js"), "old").unwrap();
    std::fs::write(dir.path().join("build/index.html"), "old").unwrap();
    let since = a_moment();
    assert!(output_dir(&fd, &none, Some(since)).is_err());
    // Rewriting one nested file in place changes no folder's time: found all the same.
    std::fs::write(dir.path().join("build/assets/js/app.js"), "new").unwrap();
    assert_eq!(output_dir(&fd, &none, Some(since)).unwrap().dir, "build");
}

#[test]
fn an_app_whose_build_made_a_server_is_refused_with_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let fd = open(dir.path());
    // A default Next.js app: public/ in the sources, `next build` writes .next/ only.
    let next = json!({"dependencies": {"next": "15", "react": "19"}, "scripts": {"build": "next build"}});
    std::fs::create_dir(dir.path().join("public")).unwrap();
    std::fs::write(dir.path().join("public/favicon.ico"), "x").unwrap();
    let since = a_moment();
    std::fs::create_dir_all(dir.path().join(".next/server/app")).unwrap();
    let err = output_dir(&fd, &next, Some(since)).unwrap_err();
    assert!(err.starts_with("this Next.js app needs a server"), "{err}");
    assert!(err.contains("output: 'export'"), "{err}");
    // With `output: 'export'`, next build also writes out/.
    std::fs::create_dir(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("out/index.html"), "<h1>hi</h1>").unwrap();
    assert_eq!(output_dir(&fd, &next, Some(since)).unwrap().dir, "out");

    let dir = tempfile::tempdir().unwrap();
    let fd = open(dir.path());
    let kit = json!({"devDependencies": {"@sveltejs/kit": "2"}});
    std::fs::create_dir_all(dir.path().join(".svelte-kit/output/server")).unwrap();
    let err = output_dir(&fd, &kit, Some(SystemTime::UNIX_EPOCH)).unwrap_err();
    assert!(err.contains("adapter-static"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let fd = open(dir.path());
    let astro = json!({"dependencies": {"astro": "5"}});
    std::fs::create_dir_all(dir.path().join("dist/server")).unwrap();
    std::fs::create_dir_all(dir.path().join("dist/client")).unwrap();
    let err = output_dir(&fd, &astro, Some(SystemTime::UNIX_EPOCH)).unwrap_err();
    assert!(err.contains("output: 'static'"), "{err}");
}

#[test]
fn each_framework_has_a_name_and_a_folder() {
    let cases = [
        (
            json!({"dependencies": {"nuxt": "4", "vue": "3", "vite": "7"}}),
            ("nuxt", ".output/public"),
        ),
        (
            json!({"dependencies": {"astro": "5"}, "devDependencies": {"vite": "6"}}),
            ("astro", "dist"),
        ),
        (
            json!({"devDependencies": {"@sveltejs/kit": "2", "vite": "8"}}),
            ("sveltekit", "build"),
        ),
        (
            json!({"dependencies": {"react-router": "7"}, "devDependencies": {"@react-router/dev": "7", "vite": "7"}}),
            ("react-router", "build/client"),
        ),
        (
            json!({"devDependencies": {"@remix-run/dev": "2", "vite": "6"}}),
            ("remix", "build/client"),
        ),
        (
            json!({"dependencies": {"@angular/core": "20"}}),
            ("angular", "dist"),
        ),
        (
            json!({"dependencies": {"@docusaurus/core": "3", "react": "19"}}),
            ("docusaurus", "build"),
        ),
        (
            json!({"devDependencies": {"@11ty/eleventy": "3", "vite": "6"}}),
            ("eleventy", "_site"),
        ),
        (
            json!({"dependencies": {"react-scripts": "5", "react": "19"}}),
            ("cra", "build"),
        ),
    ];
    for (pkg, want) in cases {
        assert_eq!(framework_of(&pkg), Some(want), "{pkg}");
    }
    // A Vite app is `vite` whatever its UI library.
    for ui in ["react", "vue", "svelte", "solid-js", "preact"] {
        let pkg = json!({"dependencies": {ui: "1"}, "devDependencies": {"vite": "8"}});
        assert_eq!(framework_of(&pkg), Some(("vite", "dist")), "{pkg}");
    }
    // A UI library alone says nothing about the folder.
    assert_eq!(framework_of(&json!({"dependencies": {"react": "19"}})), None);
}

/// Builds a project for real as far as its files go: `sources` are there before the build,
/// `wrote` written by it (a path ending in `/` is a folder); then asks [`output_dir`].
fn built(pkg: serde_json::Value, sources: &[(&str, &str)], wrote: &[&str]) -> Result<Output, String> {
    let dir = tempfile::tempdir().unwrap();
    let make = |path: &str, body: &str| {
        let full = dir.path().join(path.trim_end_matches('/'));
        if path.ends_with('/') {
            std::fs::create_dir_all(full).unwrap();
        } else {
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, body).unwrap();
        }
    };
    for (path, body) in sources {
        make(path, body);
    }
    let since = a_moment();
    for path in wrote {
        make(path, "built");
    }
    output_dir(open(dir.path()), &pkg, Some(since))
}

fn deployed(framework: &'static str, dir: &str) -> Result<Output, String> {
    Ok(Output {
        framework: Some(framework),
        dir: dir.to_owned(),
    })
}

#[test]
fn vite_apps_of_every_ui_library_publish_dist() {
    for ui in ["react", "vue", "svelte", "solid-js", "preact"] {
        let pkg = json!({"dependencies": {ui: "1"}, "devDependencies": {"vite": "8"}});
        let sources = [("index.html", "<div id=app>"), ("public/favicon.svg", "<svg/>")];
        let out = built(pkg, &sources, &["dist/index.html", "dist/assets/index.js"]);
        assert_eq!(out, deployed("vite", "dist"));
    }
}

#[test]
fn static_builds_of_the_meta_frameworks_publish_their_folder() {
    let next = json!({"dependencies": {"next": "16"}});
    let out = built(
        next,
        &[("public/next.svg", "<svg/>")],
        &[".next/server/", "out/index.html"],
    );
    assert_eq!(out, deployed("next", "out"));
    // adapter-static: Kit's own server build (for prerendering) and build/.
    let kit = json!({"devDependencies": {"@sveltejs/kit": "2", "@sveltejs/adapter-static": "3"}});
    let out = built(
        kit,
        &[("static/favicon.png", "x")],
        &[".svelte-kit/output/server/", "build/index.html"],
    );
    assert_eq!(out, deployed("sveltekit", "build"));
    let astro = json!({"dependencies": {"astro": "5"}});
    let out = built(
        astro,
        &[("public/favicon.svg", "x")],
        &["dist/index.html", "dist/_astro/x.css"],
    );
    assert_eq!(out, deployed("astro", "dist"));
    // `nuxt generate`: the prerendered site in .output/public (Nuxt also links dist/ to it).
    let nuxt = json!({"dependencies": {"nuxt": "4"}});
    let out = built(
        nuxt,
        &[],
        &[
            ".output/nitro.json",
            ".output/public/index.html",
            ".output/public/_nuxt/a.js",
        ],
    );
    assert_eq!(out, deployed("nuxt", ".output/public"));
    let rr = json!({"devDependencies": {"@react-router/dev": "7"}});
    let out = built(
        rr,
        &[("public/favicon.ico", "x")],
        &["build/client/index.html", "build/client/assets/a.js"],
    );
    assert_eq!(out, deployed("react-router", "build/client"));
    let remix = json!({"devDependencies": {"@remix-run/dev": "2"}});
    let out = built(remix, &[], &["build/client/index.html"]);
    assert_eq!(out, deployed("remix", "build/client"));
}

#[test]
fn static_site_tools_publish_their_folder() {
    let cra = json!({"dependencies": {"react-scripts": "5"}});
    let out = built(
        cra,
        &[("public/index.html", "<div id=root>")],
        &["build/index.html"],
    );
    assert_eq!(out, deployed("cra", "build"));
    let docusaurus = json!({"dependencies": {"@docusaurus/core": "3"}});
    let out = built(
        docusaurus,
        &[("static/img/logo.svg", "x")],
        &["build/index.html", "build/404.html"],
    );
    assert_eq!(out, deployed("docusaurus", "build"));
    // Eleventy's _site is not among the folders scanned: found from the dependency.
    let eleventy = json!({"devDependencies": {"@11ty/eleventy": "3"}});
    let out = built(eleventy.clone(), &[("index.md", "# hi")], &["_site/index.html"]);
    assert_eq!(out, deployed("eleventy", "_site"));
    let err = built(eleventy, &[("index.md", "# hi")], &[]).unwrap_err();
    assert_eq!(
        err,
        "no output folder found after the build: looked for _site (for eleventy), dist, build, out, public"
    );
}

const ANGULAR_JSON: &str = r#"{"version": 1, "projects": {"shop": {"projectType": "application",
    "architect": {"build": {"builder": "@angular/build:application",
    "options": {"outputPath": "dist/shop", "browser": "src/main.ts"}}}}}}"#;

#[test]
fn angular_publishes_the_browser_folder_angular_json_names() {
    let angular =
        json!({"dependencies": {"@angular/core": "20"}, "devDependencies": {"@angular/build": "20"}});
    let sources = [("angular.json", ANGULAR_JSON), ("src/index.html", "<app-root>")];
    let out = built(
        angular.clone(),
        &sources,
        &["dist/shop/browser/index.html", "dist/shop/3rdpartylicenses.txt"],
    );
    assert_eq!(out, deployed("angular", "dist/shop/browser"));
    // The folder, not its parent: the browser folder without a page is said so.
    let err = built(
        angular.clone(),
        &sources,
        &["dist/shop/browser/main.js", "dist/shop/index.html"],
    )
    .unwrap_err();
    assert_eq!(
        err,
        "the build's output folder dist/shop/browser/ has no index.html at its root, so its preview would have no page at /"
    );
    // No angular.json: the usual dist/.
    let out = built(angular.clone(), &[], &["dist/index.html"]);
    assert_eq!(out, deployed("angular", "dist"));
    // One Kiln cannot read: the usual folders, and why angular.json did not say.
    let err = built(angular, &[("angular.json", "{ // a comment")], &[]).unwrap_err();
    assert!(
        err.starts_with("no output folder found after the build: looked for dist (for angular), dist,"),
        "{err}"
    );
    assert!(err.contains("(angular.json is not valid JSON"), "{err}");
}

#[test]
fn server_builds_of_the_new_frameworks_are_refused_with_what_to_change() {
    // `nuxt build`: a server in .output/server, client files in .output/public.
    let nuxt = json!({"dependencies": {"nuxt": "4"}, "scripts": {"build": "nuxt build"}});
    let err = built(
        nuxt,
        &[],
        &[".output/server/index.mjs", ".output/public/_nuxt/a.js"],
    )
    .unwrap_err();
    assert!(err.starts_with("this Nuxt app needs a server"), "{err}");
    assert!(err.contains("`nuxt generate`"), "{err}");
    // Even with `/` prerendered (routeRules), its other routes need the server.
    let nuxt = json!({"dependencies": {"nuxt": "4"}});
    let wrote = [".output/server/index.mjs", ".output/public/index.html"];
    let err = built(nuxt, &[], &wrote).unwrap_err();
    assert!(err.starts_with("this Nuxt app needs a server"), "{err}");
    // React Router's default, `ssr: true`: build/server beside build/client (even with `/`
    // prerendered, the rest of the app needs the server).
    let rr = json!({"devDependencies": {"@react-router/dev": "7"}});
    let err = built(rr, &[], &["build/server/index.js", "build/client/index.html"]).unwrap_err();
    assert!(
        err.starts_with("this React Router app renders on a server"),
        "{err}"
    );
    assert!(err.contains("`ssr: false` in react-router.config.ts"), "{err}");
    let remix = json!({"devDependencies": {"@remix-run/dev": "2"}});
    let err = built(
        remix.clone(),
        &[],
        &["build/server/index.js", "build/client/assets/a.js"],
    )
    .unwrap_err();
    assert!(err.contains("`ssr: false` in the remix() plugin"), "{err}");
    // Remix's classic compiler: build/index.js and public/build/.
    let err = built(remix, &[], &["build/index.js", "public/build/a.js"]).unwrap_err();
    assert!(err.starts_with("this Remix app renders on a server"), "{err}");
    // Angular SSR: dist/<name>/server beside the browser folder.
    let angular = json!({"dependencies": {"@angular/core": "20", "@angular/ssr": "20"}});
    let sources = [("angular.json", ANGULAR_JSON)];
    let err = built(
        angular,
        &sources,
        &["dist/shop/server/server.mjs", "dist/shop/browser/index.html"],
    )
    .unwrap_err();
    assert!(
        err.starts_with("this Angular app renders on a server (its build wrote dist/shop/server/)"),
        "{err}"
    );
    assert!(err.contains("outputMode: 'static'"), "{err}");
}
