//! The frameworks Kiln knows: which one a package.json uses, the folder its static build
//! writes, and how to tell from what the build wrote that it made a server instead (with what
//! to change for a static preview).
//!
//! A build that wrote a server is refused even when it also prerendered a page at `/` (Angular
//! SSR, React Router with `ssr: true` and `prerender`): its other routes and its server code
//! would be silently missing from a static preview. The static builds write no server at all
//! (`nuxt generate` writes `.output/public` only; React Router's SPA mode removes
//! `build/server`).

/// A framework's name as recorded on a build, the dependency that tells it, and the folder
/// its static build writes (Angular's is refined from angular.json, see [`super::angular`]).
struct Known {
    dependency: &'static str,
    name: &'static str,
    dir: &'static str,
}

const fn known(dependency: &'static str, name: &'static str, dir: &'static str) -> Known {
    Known {
        dependency,
        name,
        dir,
    }
}

/// Most specific first: a Next, Nuxt, Astro, SvelteKit or React Router project also depends on
/// react, vue, svelte or vite; Docusaurus on react; an Eleventy site may use vite.
const KNOWN: &[Known] = &[
    known("next", "next", "out"),
    known("nuxt", "nuxt", ".output/public"),
    known("astro", "astro", "dist"),
    known("@sveltejs/kit", "sveltekit", "build"),
    known("@react-router/dev", "react-router", "build/client"),
    known("@remix-run/dev", "remix", "build/client"),
    known("@angular/core", "angular", "dist"),
    known("@docusaurus/core", "docusaurus", "build"),
    known("@11ty/eleventy", "eleventy", "_site"),
    known("react-scripts", "cra", "build"),
    known("vite", "vite", "dist"),
];

/// The framework a package.json uses (from its `dependencies` and `devDependencies`), and the
/// folder its static build usually goes to.
pub fn framework_of(package_json: &serde_json::Value) -> Option<(&'static str, &'static str)> {
    let has = |name: &str| {
        ["dependencies", "devDependencies"]
            .iter()
            .any(|section| package_json.get(section).and_then(|d| d.get(name)).is_some())
    };
    KNOWN.iter().find(|k| has(k.dependency)).map(|k| (k.name, k.dir))
}

/// What the build left in the project, as [`needs_a_server`] asks it.
pub(super) trait Wrote {
    /// `rel` is a folder (or a link that leads out of the project).
    fn dir(&self, rel: &str) -> bool;
    /// `rel` is a regular file.
    fn file(&self, rel: &str) -> bool;
}

/// Why the build's output needs a server, when what it wrote says so: what to change for a
/// static preview. `dir` is the framework's output folder (Angular's from angular.json).
pub(super) fn needs_a_server(framework: &str, dir: &str, wrote: &dyn Wrote) -> Option<String> {
    let message = match framework {
        "next" if wrote.dir(".next") && !wrote.dir("out") => {
            "this Next.js app needs a server: `next build` wrote .next/ and no out/; set \
             `output: 'export'` in next.config.js (or .mjs/.ts) for a static preview"
                .to_owned()
        }
        "sveltekit" if wrote.dir(".svelte-kit/output/server") && !wrote.dir("build") => {
            "this SvelteKit app needs a server: its adapter (adapter-auto by default) wrote no \
             build/; use @sveltejs/adapter-static in svelte.config.js for a static preview"
                .to_owned()
        }
        "astro" if wrote.dir("dist/server") => {
            "this Astro app renders on a server (`output: 'server'` with an adapter wrote \
             dist/server/); set `output: 'static'` in astro.config.mjs for a static preview"
                .to_owned()
        }
        "nuxt" if wrote.dir(".output/server") => {
            "this Nuxt app needs a server: `nuxt build` wrote .output/server/; build with \
             `nuxt generate` (the build script in package.json) for a static preview"
                .to_owned()
        }
        "react-router" if wrote.dir("build/server") => {
            "this React Router app renders on a server (`ssr: true`, the default, wrote \
             build/server/); set `ssr: false` in react-router.config.ts for a static preview \
             (SPA mode, written to build/client/)"
                .to_owned()
        }
        "remix" if wrote.dir("build/server") || wrote.file("build/index.js") => {
            "this Remix app renders on a server (its build wrote a server bundle in build/); set \
             `ssr: false` in the remix() plugin's options in vite.config.ts for a static preview \
             (SPA mode, written to build/client/)"
                .to_owned()
        }
        "angular" => {
            let base = dir.strip_suffix("/browser")?;
            let server = format!("{base}/server");
            if !wrote.dir(&server) {
                return None;
            }
            format!(
                "this Angular app renders on a server (its build wrote {server}/); remove the \
                 `ssr` and `server` options of its build in angular.json (or set \
                 `outputMode: 'static'`) for a static preview"
            )
        }
        _ => return None,
    };
    Some(message)
}
