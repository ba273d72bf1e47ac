//! The install station's use of the host's warm dependency trees ([`crate::deps`]): the build's
//! dependency key, the project's kept tree restored instead of an install when the key matches,
//! and the tree an install made kept for the project's next build.

use std::time::Duration;

use kiln_shared::store::Manifest;

use super::{layout::Layout, Stations};
use crate::deps::{DepKey, KeyInputs, Lookup};
use crate::job::files::read_in_project;

/// What the install station knows of the project's warm tree before installing.
pub(super) enum Warm {
    /// The cache is off on this builder.
    Off,
    /// This build's tree is not kept nor looked for: why.
    Refused(String),
    /// No tree with this key (why), or it could not be restored: install, then keep it.
    Miss { reason: String },
    /// The kept tree is in place: the install is skipped.
    Restored { key: DepKey, took: Duration, files: u64 },
}

impl Warm {
    /// The words for the build's log and events.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Warm::Off => None,
            Warm::Refused(why) | Warm::Miss { reason: why, .. } => Some(why),
            Warm::Restored { .. } => Some("the project's tree on this builder has the same dependency key"),
        }
    }
}

impl Stations<'_> {
    /// The build's dependency key, from the sources and this builder's tools; why not.
    async fn dep_key(&self, layout: &Layout, sources: &Manifest) -> Result<DepKey, String> {
        if self.b.dep_cache.is_none() {
            return Err("off".into());
        }
        let (b, version) = (self.b, self.version);
        let max = b.settings.api.max_file_bytes as u64;
        let mut package_jsons = Vec::new();
        for path in sources
            .files
            .keys()
            .filter(|p| *p == "package.json" || p.ends_with("/package.json"))
        {
            let value = if *path == layout.path("package.json") {
                layout.package_json.clone()
            } else {
                let raw = read_in_project(&self.project, path, max)
                    .await
                    .map_err(|e| format!("{path} could not be read ({e})"))?
                    .unwrap_or_default();
                serde_json::from_slice(&raw).map_err(|_| format!("{path} is not JSON"))?
            };
            package_jsons.push((path.clone(), value));
        }
        let inputs = KeyInputs {
            lockfile: sources.files.get(&layout.lockfile).map(|e| e.hash.as_str()),
            package_jsons,
            files: sources
                .files
                .iter()
                .map(|(path, e)| (path.as_str(), e.hash.as_str()))
                .collect(),
            allowed_scripts: &b.settings.sandbox.allow_build_scripts,
            install_folder: &layout.rel,
            node: b.toolchain.node.as_deref(),
            pnpm: b.toolchain.pnpm.as_deref(),
            generate: version.generate,
            install_command: version.settings.install_command.is_some(),
        };
        DepKey::of(&inputs).map_err(|e| e.to_string())
    }

    /// Looks for the project's warm tree and restores it into the workspace when its key
    /// matches; a tree that cannot be restored is a miss (the install runs as it would have).
    pub(super) async fn warm_tree(&self, layout: &Layout, sources: &Manifest) -> Warm {
        let Some(cache) = &self.b.dep_cache else {
            return Warm::Off;
        };
        let key = match self.dep_key(layout, sources).await {
            Ok(key) => key,
            Err(why) => return Warm::Refused(why),
        };
        let version = self.version;
        match cache.lookup(version.user_id.as_str(), version.project_id.as_str(), &key) {
            Lookup::Miss { reason } => Warm::Miss {
                reason: format!("no warm tree: {reason}"),
            },
            Lookup::Hit { tree } => match cache.restore(tree, &self.project, self.ids).await {
                Ok(done) => Warm::Restored {
                    key,
                    took: done.took,
                    files: done.copied.entries,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot restore a warm dependency tree");
                    Warm::Miss {
                        reason: "the warm tree could not be restored".into(),
                    }
                }
            },
        }
    }

    /// Keeps the tree the install made as the project's (its `node_modules` folders: the
    /// install folder's and its workspace members'), under the key of `sources` as the install
    /// left them: with the lockfile it wrote, which the version keeps with its sources, so the
    /// project's next build (whose sources then hold it) finds it. Said in the log; never fails
    /// the build.
    pub(super) async fn keep_tree(&self, layout: &Layout, sources: &Manifest) {
        let Some(cache) = &self.b.dep_cache else {
            return;
        };
        let log = self.log;
        let key = match self.dep_key(layout, sources).await {
            Ok(key) => key,
            Err(why) => {
                log.line(&format!("[kiln] dependencies: this tree is not kept: {why}"));
                return;
            }
        };
        let mut candidates: Vec<String> = sources
            .files
            .keys()
            .filter_map(|p| match p.as_str() {
                "package.json" => Some(String::new()),
                p => p.strip_suffix("/package.json").map(str::to_owned),
            })
            .filter(|dir| {
                layout.rel.is_empty() || *dir == layout.rel || dir.starts_with(&format!("{}/", layout.rel))
            })
            .collect();
        candidates.push(layout.rel.clone());
        candidates.sort();
        candidates.dedup();
        let project = self.project.clone();
        let folders: Vec<String> = candidates
            .into_iter()
            .map(|dir| match dir.as_str() {
                "" => "node_modules".to_owned(),
                dir => format!("{dir}/node_modules"),
            })
            .filter(|rel| {
                project
                    .join(rel)
                    .symlink_metadata()
                    .is_ok_and(|m| m.file_type().is_dir())
            })
            .collect();
        if folders.is_empty() {
            return;
        }
        let version = self.version;
        match cache
            .save(
                version.user_id.as_str(),
                version.project_id.as_str(),
                &key,
                &self.project,
                folders,
            )
            .await
        {
            Ok(Some(done)) => log.line(&format!(
                "[kiln] dependencies: this tree is kept for the project's next build on this builder ({:.1} MB, {} ms)",
                done.copied.bytes as f64 / 1e6,
                done.took.as_millis()
            )),
            Ok(None) => log.line("[kiln] dependencies: this tree is larger than KILN_DEP_CACHE_MB; not kept"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot keep a warm dependency tree");
                log.line("[kiln] dependencies: this tree could not be kept (see the builder's log)");
            }
        }
    }
}
