//! An Angular project's output folder, from angular.json: its first project's build target
//! (in the file's order), whose `outputPath` (`dist/<project>` when unset) holds the site
//! itself with the `browser` builder and in its `browser/` subfolder with Angular 17+'s
//! `application` builder (`outputPath: {base, browser}` names that subfolder, `""` for none).

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// The largest angular.json read.
pub(super) const MAX_ANGULAR_JSON: u64 = 1024 * 1024;

#[derive(Deserialize)]
struct Workspace {
    #[serde(default)]
    projects: Projects,
}

/// The projects of angular.json in the order the file lists them.
#[derive(Default)]
struct Projects(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Projects {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Projects;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of projects")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Projects, A::Error> {
                let mut projects = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    projects.push((name, map.next_value()?));
                }
                Ok(Projects(projects))
            }
            fn visit_unit<E>(self) -> Result<Projects, E> {
                Ok(Projects::default())
            }
        }
        deserializer.deserialize_any(InOrder)
    }
}

/// The folder (relative to the project, without `./` or a trailing `/`) that angular.json's
/// first project builds its browser files to, or why it cannot be told.
pub(super) fn output_folder(angular_json: &[u8]) -> Result<String, String> {
    let workspace: Workspace =
        serde_json::from_slice(angular_json).map_err(|e| format!("angular.json is not valid JSON: {e}"))?;
    let Some((name, project)) = workspace.projects.0.into_iter().next() else {
        return Err("angular.json lists no project".to_owned());
    };
    let build = project
        .get("architect")
        .or_else(|| project.get("targets"))
        .and_then(|targets| targets.get("build"));
    let builder = build
        .and_then(|b| b.get("builder"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let output_path = build.and_then(|b| b.pointer("/options/outputPath"));
    let default_base = format!("dist/{name}");
    // The `browser` builders (webpack or esbuild) write the site at outputPath itself.
    let application = !(builder.ends_with(":browser") || builder.ends_with(":browser-esbuild"));
    let (base, browser) = match output_path {
        Some(Value::String(path)) => (path.as_str(), "browser"),
        Some(Value::Object(paths)) => (
            paths.get("base").and_then(Value::as_str).unwrap_or(&default_base),
            paths.get("browser").and_then(Value::as_str).unwrap_or("browser"),
        ),
        _ => (default_base.as_str(), "browser"),
    };
    let base = tidy(base);
    let browser = tidy(browser);
    let folder = match (application, browser.is_empty()) {
        (true, false) => format!("{base}/{browser}"),
        _ => base,
    };
    if folder.is_empty() || folder == "." {
        return Err(format!(
            "angular.json's project {name} builds into the project folder itself; set its \
             outputPath to a folder such as dist/{name}"
        ));
    }
    Ok(folder)
}

/// `path` without a leading `./` or trailing `/`.
fn tidy(path: &str) -> String {
    let path = path.trim_end_matches('/');
    path.strip_prefix("./").unwrap_or(path).to_owned()
}

#[cfg(test)]
mod tests {
    use super::output_folder;

    #[test]
    fn the_first_projects_browser_folder() {
        // Angular 17+: the application builder writes browser/ (and server/ for SSR).
        let v17 = br#"{"projects": {"shop": {"architect": {"build": {
            "builder": "@angular-devkit/build-angular:application",
            "options": {"outputPath": "dist/shop", "browser": "src/main.ts"}}}}}}"#;
        assert_eq!(output_folder(v17).unwrap(), "dist/shop/browser");
        // Angular 19+'s @angular/build, outputPath unset: dist/<name>.
        let v19 = br#"{"projects": {"zeta": {"architect": {"build": {
            "builder": "@angular/build:application", "options": {}}}},
            "alpha": {"architect": {"build": {"builder": "@angular/build:application",
            "options": {"outputPath": "elsewhere"}}}}}}"#;
        assert_eq!(output_folder(v19).unwrap(), "dist/zeta/browser");
        // outputPath as an object: its base and browser (none when "").
        let object = br#"{"projects": {"a": {"architect": {"build": {
            "builder": "@angular/build:application",
            "options": {"outputPath": {"base": "./www/", "browser": ""}}}}}}}"#;
        assert_eq!(output_folder(object).unwrap(), "www");
        let object = br#"{"projects": {"a": {"architect": {"build": {
            "builder": "@angular/build:application",
            "options": {"outputPath": {"base": "out", "browser": "site"}}}}}}}"#;
        assert_eq!(output_folder(object).unwrap(), "out/site");
        // The older browser builder writes the site at outputPath itself.
        let browser = br#"{"projects": {"legacy": {"architect": {"build": {
            "builder": "@angular-devkit/build-angular:browser",
            "options": {"outputPath": "dist/legacy"}}}}}}"#;
        assert_eq!(output_folder(browser).unwrap(), "dist/legacy");
    }

    #[test]
    fn says_why_when_it_cannot_tell() {
        assert!(output_folder(b"{")
            .unwrap_err()
            .starts_with("angular.json is not valid JSON"));
        assert_eq!(
            output_folder(br#"{"projects": {}}"#).unwrap_err(),
            "angular.json lists no project"
        );
        let here = br#"{"projects": {"a": {"architect": {"build": {
            "builder": "@angular/build:application",
            "options": {"outputPath": {"base": ".", "browser": ""}}}}}}}"#;
        assert!(output_folder(here)
            .unwrap_err()
            .contains("into the project folder itself"));
    }
}
