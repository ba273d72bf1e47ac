//! Where a build's output is: from package.json's dependencies first, then the usual folders.

use std::path::{Path, PathBuf};

/// Folders looked at when package.json does not say.
const SCAN: &[&str] = &["dist", "build", "out", "public"];

/// The framework a package.json uses, and the folder its static build goes to.
pub fn framework_of(package_json: &serde_json::Value) -> Option<(&'static str, &'static str)> {
    let has = |name: &str| {
        ["dependencies", "devDependencies"]
            .iter()
            .any(|section| package_json.get(section).and_then(|d| d.get(name)).is_some())
    };
    // Most specific first: a Next or Astro project may also depend on vite or react.
    const KNOWN: &[(&str, &str, &str)] = &[
        ("next", "next", "out"),
        ("astro", "astro", "dist"),
        ("@sveltejs/kit", "sveltekit", "build"),
        ("react-scripts", "cra", "build"),
        ("vite", "vite", "dist"),
    ];
    KNOWN
        .iter()
        .find(|(dep, _, _)| has(dep))
        .map(|(_, name, dir)| (*name, *dir))
}

/// The output folder of a built project, or a message saying where Kiln looked.
pub fn output_dir(project: &Path, package_json: &serde_json::Value) -> Result<PathBuf, String> {
    let is_dir = |d: &str| project.join(d).is_dir();
    if let Some((_, dir)) = framework_of(package_json) {
        if is_dir(dir) {
            return Ok(project.join(dir));
        }
    }
    SCAN.iter()
        .find(|d| is_dir(d))
        .map(|d| project.join(d))
        .ok_or_else(|| {
            let expected = framework_of(package_json)
                .map(|(name, dir)| format!("{dir} (for {name}), "))
                .unwrap_or_default();
            format!(
                "no output folder found after the build: looked for {expected}{}",
                SCAN.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn falls_back_to_scanning_then_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let vite = json!({"devDependencies": {"vite": "6"}});
        let err = output_dir(dir.path(), &vite).unwrap_err();
        assert_eq!(
            err,
            "no output folder found after the build: looked for dist (for vite), dist, build, out, public"
        );
        std::fs::create_dir(dir.path().join("public")).unwrap();
        assert_eq!(output_dir(dir.path(), &vite).unwrap(), dir.path().join("public"));
        std::fs::create_dir(dir.path().join("dist")).unwrap();
        assert_eq!(output_dir(dir.path(), &vite).unwrap(), dir.path().join("dist"));
    }
}
