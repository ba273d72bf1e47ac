//! A dependency tree's key: everything that decides what `pnpm install` puts in `node_modules`,
//! as named parts, so that a miss can say which part changed.
//!
//! | part | what it holds |
//! |---|---|
//! | `lockfile` | the content hash of the install folder's `pnpm-lock.yaml` |
//! | `dependencies` | the dependency fields (and `pnpm`, `overrides`, `resolutions`, a workspace member's name and version) of every package.json of the tree |
//! | `pnpm settings` | the content hashes of `.npmrc`, `pnpm-workspace.yaml` and `.pnpmfile.cjs` files |
//! | `allowed build scripts` | the farm's `KILN_ALLOW_BUILD_SCRIPTS` |
//! | `install folder` | where the install runs, from the top of the tree |
//! | `node`, `pnpm` | the builder's versions |
//! | `platform` | the host's OS and architecture |
//! | `kiln` | the version of what Kiln's install does (bumped when it changes what it writes) |
//!
//! A tree is worth keeping only when it is a function of these: a build without a lockfile
//! (the install resolves today's versions), with its own install scripts or an `installCommand`
//! (project code that may write anywhere in the tree), that runs the generator, or whose sources
//! carry `node_modules` files installs every time ([`Refusal`]).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Bumped whenever the install station changes what it leaves in `node_modules`.
const KILN_INSTALL: &str = "1";

/// package.json members that decide the installed tree.
const DEPENDENCY_FIELDS: &[&str] = &[
    "dependencies",
    "devDependencies",
    "optionalDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "dependenciesMeta",
    "bundledDependencies",
    "bundleDependencies",
    "overrides",
    "resolutions",
    "pnpm",
    "workspaces",
];

/// Lifecycle scripts pnpm runs for the project itself during an install.
const LIFECYCLE: &[&str] = &["preinstall", "install", "postinstall", "prepare"];

/// Files whose content changes how pnpm installs.
const SETTINGS_FILES: &[&str] = &[".npmrc", "pnpm-workspace.yaml", ".pnpmfile.cjs"];

/// What a key is made from.
#[derive(Debug, Clone, Default)]
pub struct KeyInputs<'a> {
    /// The lockfile's content hash (`None`: no lockfile).
    pub lockfile: Option<&'a str>,
    /// Every package.json of the tree (outside `node_modules`): its path and its value.
    pub package_jsons: Vec<(String, serde_json::Value)>,
    /// The content hashes of the tree's files, by path (settings files are found here).
    pub files: Vec<(&'a str, &'a str)>,
    pub allowed_scripts: &'a [String],
    pub install_folder: &'a str,
    pub node: Option<&'a str>,
    pub pnpm: Option<&'a str>,
    /// The build runs the operator's generator.
    pub generate: bool,
    /// The project's `installCommand`.
    pub install_command: bool,
}

/// Why a build's tree is not kept nor looked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the sources have no pnpm-lock.yaml (the install resolves today's versions)")]
    NoLockfile,
    #[error("{0} has its own install scripts ({1}), which run every build")]
    OwnScripts(String, String),
    #[error("the project has an installCommand, which runs every build")]
    InstallCommand,
    #[error("the build runs the generator, which writes the tree")]
    Generated,
    #[error("the sources carry node_modules files")]
    SourceModules,
}

/// A tree's key: named parts and their digest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DepKey {
    pub parts: BTreeMap<String, String>,
}

impl DepKey {
    /// The key of a tree made from `inputs`, or why it is not worth keeping.
    pub fn of(inputs: &KeyInputs<'_>) -> Result<Self, Refusal> {
        if inputs.generate {
            return Err(Refusal::Generated);
        }
        if inputs.install_command {
            return Err(Refusal::InstallCommand);
        }
        if inputs
            .files
            .iter()
            .any(|(path, _)| path.split('/').any(|part| part == "node_modules"))
        {
            return Err(Refusal::SourceModules);
        }
        let Some(lockfile) = inputs.lockfile else {
            return Err(Refusal::NoLockfile);
        };
        let mut dependencies = BTreeMap::new();
        for (path, pkg) in &inputs.package_jsons {
            let scripts: Vec<&str> = LIFECYCLE
                .iter()
                .copied()
                .filter(|name| pkg.pointer(&format!("/scripts/{name}")).is_some())
                .collect();
            if !scripts.is_empty() {
                return Err(Refusal::OwnScripts(path.clone(), scripts.join(", ")));
            }
            let mut fields = serde_json::Map::new();
            for field in DEPENDENCY_FIELDS.iter().chain(&["name", "version"]) {
                if let Some(v) = pkg.get(*field) {
                    fields.insert((*field).to_owned(), v.clone());
                }
            }
            dependencies.insert(path.as_str(), serde_json::Value::Object(fields));
        }
        let settings: BTreeMap<&str, &str> = inputs
            .files
            .iter()
            .filter(|(path, _)| {
                let name = path.rsplit('/').next().unwrap_or(path);
                SETTINGS_FILES.contains(&name)
            })
            .copied()
            .collect();
        let mut allowed = inputs.allowed_scripts.to_vec();
        allowed.sort();
        let parts = [
            ("lockfile", lockfile.to_owned()),
            ("dependencies", digest_json(&dependencies)),
            ("pnpm settings", digest_json(&settings)),
            ("allowed build scripts", digest_json(&allowed)),
            ("install folder", format!("/{}", inputs.install_folder)),
            ("node", inputs.node.unwrap_or("unknown").trim().to_owned()),
            ("pnpm", inputs.pnpm.unwrap_or("unknown").trim().to_owned()),
            (
                "platform",
                format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
            ),
            ("kiln", KILN_INSTALL.to_owned()),
        ];
        Ok(Self {
            parts: parts.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        })
    }

    /// One hex digest of every part.
    pub fn digest(&self) -> String {
        digest_json(&self.parts)
    }

    /// What changed from `before` (the project's kept tree) to this key, in words: the
    /// versions for the tools, the part's name for the rest.
    pub fn changed_from(&self, before: &DepKey) -> String {
        let changed: Vec<String> = self
            .parts
            .iter()
            .filter(|(name, value)| before.parts.get(*name) != Some(*value))
            .map(|(name, value)| match name.as_str() {
                "node" | "pnpm" | "platform" => format!(
                    "{name} {} → {value}",
                    before.parts.get(name).map(String::as_str).unwrap_or("?")
                ),
                _ => name.clone(),
            })
            .chain(
                before
                    .parts
                    .keys()
                    .filter(|name| !self.parts.contains_key(*name))
                    .cloned(),
            )
            .collect();
        match changed.as_slice() {
            [] => "nothing (the tree was not kept)".to_owned(),
            _ => format!("changed: {}", changed.join(", ")),
        }
    }
}

fn digest_json(value: &impl serde::Serialize) -> String {
    let bytes = serde_json::to_vec(value).expect("serializable");
    hex::encode(Sha256::digest(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inputs<'a>(pkg: serde_json::Value, files: Vec<(&'a str, &'a str)>) -> KeyInputs<'a> {
        KeyInputs {
            lockfile: Some("lock-1"),
            package_jsons: vec![("package.json".into(), pkg)],
            files,
            allowed_scripts: &[],
            install_folder: "",
            node: Some("v24.1.0\n"),
            pnpm: Some("10.20.0"),
            generate: false,
            install_command: false,
        }
    }

    #[test]
    fn each_part_changes_the_key_and_is_named() {
        let pkg = json!({"name": "a", "scripts": {"build": "vite build"}, "dependencies": {"vite": "^7"}});
        let base = DepKey::of(&inputs(pkg.clone(), vec![("src/main.ts", "h1")])).unwrap();
        // A source file or a script other than the lifecycle ones changes nothing.
        let mut other = pkg.clone();
        other["scripts"]["build"] = json!("vite build --mode x");
        let same = DepKey::of(&inputs(other, vec![("src/main.ts", "h2")])).unwrap();
        assert_eq!(base.digest(), same.digest());

        let mut lock = inputs(pkg.clone(), vec![]);
        lock.lockfile = Some("lock-2");
        let lock = DepKey::of(&lock).unwrap();
        assert_eq!(lock.changed_from(&base), "changed: lockfile");

        let mut added = pkg.clone();
        added["dependencies"]["left-pad"] = json!("1.3.0");
        let added = DepKey::of(&inputs(added, vec![])).unwrap();
        assert_eq!(added.changed_from(&base), "changed: dependencies");

        let npmrc = DepKey::of(&inputs(pkg.clone(), vec![(".npmrc", "n1")])).unwrap();
        assert_eq!(npmrc.changed_from(&base), "changed: pnpm settings");

        let mut node = inputs(pkg.clone(), vec![]);
        node.node = Some("v22.0.0");
        let node = DepKey::of(&node).unwrap();
        assert_eq!(node.changed_from(&base), "changed: node v24.1.0 → v22.0.0");

        let allowed = ["esbuild".to_owned()];
        let mut scripts = inputs(pkg.clone(), vec![]);
        scripts.allowed_scripts = &allowed;
        let scripts = DepKey::of(&scripts).unwrap();
        assert_eq!(scripts.changed_from(&base), "changed: allowed build scripts");

        let mut folder = inputs(pkg, vec![]);
        folder.install_folder = "apps/web";
        let folder = DepKey::of(&folder).unwrap();
        assert_eq!(folder.changed_from(&base), "changed: install folder");
        assert_eq!(base.changed_from(&base), "nothing (the tree was not kept)");
    }

    #[test]
    fn trees_that_are_not_a_function_of_the_key_are_refused() {
        let pkg = json!({"dependencies": {"vite": "^7"}});
        let mut none = inputs(pkg.clone(), vec![]);
        none.lockfile = None;
        assert_eq!(DepKey::of(&none), Err(Refusal::NoLockfile));
        let own = json!({"scripts": {"postinstall": "node gen.js"}});
        assert_eq!(
            DepKey::of(&inputs(own, vec![])),
            Err(Refusal::OwnScripts("package.json".into(), "postinstall".into()))
        );
        let mut command = inputs(pkg.clone(), vec![]);
        command.install_command = true;
        assert_eq!(DepKey::of(&command), Err(Refusal::InstallCommand));
        let mut generated = inputs(pkg.clone(), vec![]);
        generated.generate = true;
        assert_eq!(DepKey::of(&generated), Err(Refusal::Generated));
        assert_eq!(
            DepKey::of(&inputs(pkg, vec![("node_modules/x/index.js", "h")])),
            Err(Refusal::SourceModules)
        );
    }
}
