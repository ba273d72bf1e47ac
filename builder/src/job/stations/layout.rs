//! Where in the tree a build runs, from its settings (`settings.rootDir` and a
//! `pnpm-workspace.yaml` at the top), and the project's own commands (`installCommand`,
//! `buildCommand`).
//!
//! - The **app folder** holds the app's package.json: the top of the tree, or `rootDir`. The
//!   checks, the build, the output's detection (or `outputDir`) run there; every path Kiln
//!   reports (the output folder, diagnostics, the kept lockfile) stays relative to the top.
//! - The **install folder**: the top of the tree when it has a `pnpm-workspace.yaml` (one
//!   install for the whole workspace, its lockfile at the top), else the app folder (its
//!   lockfile `rootDir/pnpm-lock.yaml`, kept with the sources under that path).
//! - `installCommand` runs after Kiln's own install (both halves of it, see
//!   [`crate::scripts`]), in the app folder, as the build's user, with the registry's network
//!   like the install scripts. It does not replace the store's half: that half is pnpm alone,
//!   as the store's user, so that the shared store is only ever written by pnpm itself; a
//!   project's command there would be project code writing the store every build shares.
//! - `buildCommand` runs instead of `pnpm run build`, as `sh -c <command>` in the app folder,
//!   as the build (the same sandbox, limits, network and environment).
//!
//! The workspace's top stays the project folder the sandbox binds; the app folder is only the
//! commands' working folder inside it, and Kiln opens it beneath the top through no link (the
//! install's store half runs in it as the store's user, and must not be led elsewhere).

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use bytes::Bytes;
use kiln_shared::domain::{Diagnostic, Step};
use kiln_shared::store::Manifest;

use super::Stations;
use crate::beneath::{self, BeneathError};
use crate::diagnostics;
use crate::job::failure::{beneath_failure, fail, infra, Failure};
use crate::job::files::LOCKFILE;
use crate::process::StepEnv;

/// The file that makes the top of the tree a pnpm workspace.
const WORKSPACE_FILE: &str = "pnpm-workspace.yaml";

/// Where the install runs, and what says it may be frozen.
pub(super) struct Layout {
    /// The folder the install runs in (the top of the tree, or the app folder).
    pub dir: PathBuf,
    /// The same from the top of the tree (`""`: the top).
    pub rel: String,
    /// Its lockfile, from the top of the tree.
    pub lockfile: String,
    /// The files that must be unchanged since the parent version for the kept lockfile to
    /// freeze the install.
    pub described_by: Vec<String>,
    /// package.json of the install folder (the app's, or the workspace's top one: `{}` when
    /// the top has none).
    pub package_json: serde_json::Value,
}

impl Layout {
    /// `name` of the install folder, from the top of the tree.
    pub fn path(&self, name: &str) -> String {
        match self.rel.as_str() {
            "" => name.to_owned(),
            rel => format!("{rel}/{name}"),
        }
    }
}

impl Stations<'_> {
    /// `rel` (relative to the app folder) from the top of the tree.
    pub(super) fn in_app(&self, rel: &str) -> String {
        match (self.app_dir.as_str(), rel) {
            ("", rel) => rel.to_owned(),
            (dir, "" | ".") => dir.to_owned(),
            (dir, rel) => format!("{dir}/{rel}"),
        }
    }

    /// The app folder, opened beneath the top of the tree through no link.
    pub(super) fn open_app(&self) -> Result<OwnedFd, BeneathError> {
        let top = beneath::open_dir_path(&self.project)?;
        match self.app_dir.as_str() {
            "" => Ok(top),
            dir => beneath::open_dir_through_no_link(&top, dir),
        }
    }

    /// The app's package.json under `settings.rootDir`, read beneath the top of the tree; a
    /// `rootDir` that is not a folder of the tree, or holds no package.json, fails the build at
    /// `step` (code `root_dir_missing`).
    pub(super) async fn app_package_json(&self, step: Step) -> Result<Bytes, Failure> {
        let (top, dir) = (self.project.clone(), self.app_dir.clone());
        let max = self.b.settings.api.max_file_bytes as u64;
        let read = tokio::task::spawn_blocking(move || {
            let top = beneath::open_dir_path(&top)?;
            // Through no link: the install's store half runs in it, as the store's user.
            let app = match beneath::open_dir_through_no_link(&top, &dir) {
                Ok(app) => app,
                Err(e) if e.is_refusal() => {
                    return Ok(Err(format!(
                        "settings.rootDir {dir}/ is not a folder of the sources ({e}): it must name the folder holding the app's package.json, relative to the top of the tree"
                    )))
                }
                Err(e) => return Err(e),
            };
            Ok(match beneath::read_beneath(&app, "package.json", max)? {
                Some(body) => Ok(Bytes::from(body)),
                None => Err(format!(
                    "settings.rootDir {dir}/ has no package.json: it must name the folder holding the app's package.json"
                )),
            })
        })
        .await
        .map_err(|e| infra(step, e.to_string()))?
        .map_err(|e| beneath_failure(step, format!("reading the app's package.json: {e}"), &e))?;
        read.map_err(|message| {
            let d = Diagnostic::kiln(step, "root_dir_missing", &message);
            fail(step, message)
                .code("root_dir_missing")
                .with(diagnostics::Parsed {
                    diagnostics: vec![d],
                    total: 1,
                })
        })
    }

    /// Where the install runs: the top of a pnpm workspace, else the app folder.
    /// `top_package_json`: the top's package.json, when it has one.
    pub(super) fn layout(
        &self,
        sources: &Manifest,
        app_package_json: &serde_json::Value,
        top_package_json: Option<&[u8]>,
    ) -> Result<Layout, Failure> {
        let workspace = !self.app_dir.is_empty() && sources.files.contains_key(WORKSPACE_FILE);
        if !workspace {
            return Ok(Layout {
                dir: self.app.clone(),
                rel: self.app_dir.clone(),
                lockfile: self.in_app(LOCKFILE),
                described_by: vec![self.in_app("package.json")],
                package_json: app_package_json.clone(),
            });
        }
        self.log.line(&format!(
            "[kiln] {WORKSPACE_FILE} at the top of the tree: installing the workspace there, building in {}/",
            self.app_dir
        ));
        let mut described_by = vec![self.in_app("package.json"), WORKSPACE_FILE.to_owned()];
        described_by.extend(
            sources
                .files
                .keys()
                .filter(|p| *p == "package.json" || p.ends_with("/package.json"))
                .filter(|p| !described_by.contains(p))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let package_json = match top_package_json {
            Some(raw) => super::package_json_value(raw)?,
            None => serde_json::json!({}),
        };
        Ok(Layout {
            dir: self.project.clone(),
            rel: String::new(),
            lockfile: LOCKFILE.to_owned(),
            described_by,
            package_json,
        })
    }

    /// Runs one of the project's own commands (`settings.installCommand`, `buildCommand`) as
    /// `sh -c <command>` in the app folder, at `step`; a failure names the command.
    pub(super) async fn run_command(
        &self,
        step: Step,
        env: &StepEnv,
        setting: &str,
        command: &str,
    ) -> Result<(), Failure> {
        self.log
            .line(&format!("[kiln] running settings.{setting}: {command}"));
        self.run_in(step, env, &self.app, "sh", &["-c", command], Some(command))
            .await
    }
}

impl Stations<'_> {
    /// A tree without package.json (and no `rootDir`): published as it is, from the top or
    /// from `outputDir`; the output folder (`None`: the top) and the framework. Commands set
    /// in the settings have nothing to install or build with, which fails the build.
    pub(super) fn without_package_json(&self) -> Result<(Option<String>, Option<&'static str>), Failure> {
        let settings = &self.version.settings;
        let command = [
            ("installCommand", &settings.install_command),
            ("buildCommand", &settings.build_command),
        ]
        .into_iter()
        .find_map(|(name, command)| command.as_ref().map(|_| name));
        if let Some(setting) = command {
            let message = format!(
                "settings.{setting} is set but the tree has no package.json to install and build: add one (`{{}}` will do)"
            );
            return Err(fail(Step::Install, message).code("no_package_json"));
        }
        let Some(dir) = &settings.output_dir else {
            self.log
                .line("[kiln] no package.json: publishing the tree as a static site");
            return Ok((None, Some("static")));
        };
        let top = beneath::open_dir_path(&self.project)
            .map_err(|e| beneath_failure(Step::Output, e.to_string(), &e))?;
        let output = crate::detect::named_output_dir(&top, &serde_json::json!({}), dir, None)
            .map_err(|e| fail(Step::Output, e.message).code(e.code))?;
        self.log.line(&format!(
            "[kiln] no package.json: publishing {dir}/ (settings.outputDir) as a static site"
        ));
        Ok((Some(output.dir), Some("static")))
    }
}
