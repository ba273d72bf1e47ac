//! The framework matrix's projects (the CI set's fixtures under `api/tests/fixtures/`, the
//! heavier ones under `ops/bench/frameworks/`), what each must come to, and the choices read
//! from the environment (`KILN_BENCH_FRAMEWORKS`, `KILN_BENCH_FRAMEWORK_RUNS`).

use std::path::Path;

use anyhow::{bail, Context};

/// What a project's build must come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Deployed from this folder (relative to the project).
    Deploy(&'static str),
    /// Refused at step `output` with a message containing these words.
    Refuse(&'static str),
}

/// One row of the matrix.
#[derive(Debug, Clone, Copy)]
pub struct Project {
    /// The name `KILN_BENCH_FRAMEWORKS` selects it by.
    pub name: &'static str,
    /// The framework, as the table shows it.
    pub framework: &'static str,
    /// Its folder, relative to the repository's root.
    pub path: &'static str,
    pub expect: Expect,
    /// Text the page at `/` of its preview must contain (the `<title>` of a client-rendered
    /// app, whose body is empty until its script runs).
    pub marker: Option<&'static str>,
}

const fn fixture(
    name: &'static str,
    framework: &'static str,
    path: &'static str,
    expect: Expect,
    marker: Option<&'static str>,
) -> Project {
    Project {
        name,
        framework,
        path,
        expect,
        marker,
    }
}

use Expect::{Deploy, Refuse};

/// Every project, in the table's order: the CI set (deployed, then refused), then the heavier
/// ones only this command builds.
pub const ALL: &[Project] = &[
    fixture(
        "vite-react",
        "Vite + React",
        "api/tests/fixtures/vite-react",
        Deploy("dist"),
        Some("<title>Vite React</title>"),
    ),
    fixture(
        "vite-vue",
        "Vite + Vue",
        "api/tests/fixtures/vite-vue",
        Deploy("dist"),
        Some("<title>Vite Vue</title>"),
    ),
    fixture(
        "vite-svelte",
        "Vite + Svelte",
        "api/tests/fixtures/vite-svelte",
        Deploy("dist"),
        Some("<title>Vite Svelte</title>"),
    ),
    fixture(
        "next-export",
        "Next.js (output: 'export')",
        "api/tests/fixtures/next-export",
        Deploy("out"),
        Some("Built by Kiln from Next.js export"),
    ),
    fixture(
        "sveltekit-static",
        "SvelteKit (adapter-static)",
        "api/tests/fixtures/sveltekit-static",
        Deploy("build"),
        Some("Built by Kiln from SvelteKit static"),
    ),
    fixture(
        "astro-static",
        "Astro (static)",
        "api/tests/fixtures/astro-static",
        Deploy("dist"),
        Some("Built by Kiln from Astro static"),
    ),
    fixture(
        "nuxt-generate",
        "Nuxt (generate)",
        "api/tests/fixtures/nuxt-generate",
        Deploy(".output/public"),
        Some("Built by Kiln from Nuxt generate"),
    ),
    // The seeds' example (Vite + React + Tailwind), which the other parts build.
    fixture(
        "vite-react-example",
        "Vite + React + Tailwind",
        "examples/vite-react",
        Deploy("dist"),
        Some("<title>Salon booking</title>"),
    ),
    fixture(
        "next-default",
        "Next.js (default)",
        "api/tests/fixtures/next-default",
        Refuse("needs a server"),
        None,
    ),
    fixture(
        "sveltekit-auto",
        "SvelteKit (adapter-auto)",
        "api/tests/fixtures/sveltekit-auto",
        Refuse("needs a server"),
        None,
    ),
    fixture(
        "astro-server",
        "Astro (output: 'server')",
        "api/tests/fixtures/astro-server",
        Refuse("renders on a server"),
        None,
    ),
    fixture(
        "solid",
        "Solid (Vite)",
        "ops/bench/frameworks/solid",
        Deploy("dist"),
        Some("kiln-matrix:solid"),
    ),
    fixture(
        "preact",
        "Preact (Vite)",
        "ops/bench/frameworks/preact",
        Deploy("dist"),
        Some("kiln-matrix:preact"),
    ),
    fixture(
        "angular",
        "Angular",
        "ops/bench/frameworks/angular",
        Deploy("dist/angular/browser"),
        Some("kiln-matrix:angular"),
    ),
    fixture(
        "cra",
        "Create React App",
        "ops/bench/frameworks/cra",
        Deploy("build"),
        Some("kiln-matrix:cra"),
    ),
    fixture(
        "docusaurus",
        "Docusaurus",
        "ops/bench/frameworks/docusaurus",
        Deploy("build"),
        Some("kiln-matrix:docusaurus"),
    ),
    fixture(
        "eleventy",
        "Eleventy",
        "ops/bench/frameworks/eleventy",
        Deploy("_site"),
        Some("kiln-matrix:eleventy"),
    ),
    fixture(
        "react-router-spa",
        "React Router 7 (SPA mode)",
        "ops/bench/frameworks/react-router-spa",
        Deploy("build/client"),
        Some("kiln-matrix:react-router-spa"),
    ),
];

/// The projects `KILN_BENCH_FRAMEWORKS` names (comma-separated; unset or empty: all).
pub fn selected(list: Option<&str>) -> anyhow::Result<Vec<Project>> {
    let Some(list) = list.map(str::trim).filter(|l| !l.is_empty()) else {
        return Ok(ALL.to_vec());
    };
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(p) = ALL.iter().find(|p| p.name == name) else {
            let names: Vec<&str> = ALL.iter().map(|p| p.name).collect();
            bail!(
                "KILN_BENCH_FRAMEWORKS: unknown project {name:?}; expected some of {}",
                names.join(",")
            );
        };
        if !out.iter().any(|o: &Project| o.name == name) {
            out.push(*p);
        }
    }
    Ok(out)
}

/// Cold and warm runs a side, from `KILN_BENCH_FRAMEWORK_RUNS`: `<cold>+<warm>` (`1+3`), or
/// `<warm>` alone (one cold run). Default 1 cold and 3 warm.
pub fn runs(value: Option<&str>) -> anyhow::Result<(usize, usize)> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok((1, 3));
    };
    let parse = |s: &str| {
        s.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("KILN_BENCH_FRAMEWORK_RUNS={v:?}: expected <cold>+<warm> (such as 1+3) or <warm>, each at least 1"))
    };
    match v.split_once('+') {
        Some((cold, warm)) => Ok((parse(cold)?, parse(warm)?)),
        None => Ok((1, parse(v)?)),
    }
}

/// The project's folder, or why it is not there.
pub fn folder(root: &Path, p: &Project) -> Result<std::path::PathBuf, String> {
    let dir = root.join(p.path);
    if dir.join("package.json").is_file() {
        Ok(dir)
    } else {
        Err(format!("no project at {} (no package.json)", p.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_and_runs() {
        assert_eq!(selected(None).unwrap().len(), ALL.len());
        let some = selected(Some("vite-vue, angular,vite-vue")).unwrap();
        assert_eq!(
            some.iter().map(|p| p.name).collect::<Vec<_>>(),
            ["vite-vue", "angular"]
        );
        assert!(selected(Some("vite-vue,nope"))
            .unwrap_err()
            .to_string()
            .contains("nope"));
        assert_eq!(runs(None).unwrap(), (1, 3));
        assert_eq!(runs(Some("2+5")).unwrap(), (2, 5));
        assert_eq!(runs(Some("4")).unwrap(), (1, 4));
        assert!(runs(Some("0+3")).is_err());
        assert!(runs(Some("x")).is_err());
    }

    #[test]
    fn names_are_unique() {
        for (i, p) in ALL.iter().enumerate() {
            assert!(ALL[..i].iter().all(|o| o.name != p.name), "{} twice", p.name);
        }
    }
}
