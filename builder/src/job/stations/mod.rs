//! The stations of a build, in the order it passes them: fetch (its sources laid out in the
//! workspace), generate (the operator's generator, when asked), install (pnpm: the store's
//! half, then the build's scripts, then the project's `installCommand`), audit (the installed
//! lockfile against advisories, in [`audit`]), check (typecheck and lint when asked, in
//! [`check`]), build (`pnpm run build`, or the project's `buildCommand`), output (the folder to
//! publish, or the project's `outputDir`) and upload (its files to the artifact store). Where
//! in the tree each runs (`rootDir`, a pnpm workspace) is in [`layout`]. All of them run in the
//! build's cell ([`build`]) and fail with a [`Failure`], whose messages name no folder of the
//! builder's.

use std::path::PathBuf;
use std::time::Instant as StdInstant;

mod audit;
mod check;
mod deps;
mod layout;
mod run;

use bytes::Bytes;
use kiln_shared::db::versions::{Metrics, Version};
use kiln_shared::domain::{EventType, Step};
use kiln_shared::store::{Artifacts, Manifest, ManifestKind};
use serde_json::json;
use tokio::time::Instant;

use super::failure::{
    self, beneath_failure, fail, infra, output_failure, publish_failure, reading, store_failure, Failure,
};
use super::files::{keep_lockfile, materialize, on_disk, package_json_unchanged, read_in_project};
use super::outcome::{emit, Success};
use crate::context::Builder;
use crate::diagnostics;
use crate::lease::Stopper;
use crate::log::BuildLog;
use crate::process::StepEnv;
use crate::publish::{self, PublishError};
use crate::sandbox::{Cell, Confinement, Network};
use crate::workspace::Workspace;
use crate::{detect, generator, package_manager, scripts};

/// What the attempt read before the stations: the project's environment values, and the
/// version's source manifest (`None`: the fetch station reads it).
pub(super) struct Given<'a> {
    pub project_env: &'a [(String, String)],
    pub sources: Option<&'a Manifest>,
}

/// Runs the build in a cell of its own (its cgroup, removed at the end whatever happened).
pub(super) async fn build(
    b: &Builder,
    version: &Version,
    ws: &Workspace,
    log: &BuildLog,
    metrics: &mut Metrics,
    stopper: &Stopper,
    given: Given<'_>,
) -> Result<Success, Failure> {
    let Given {
        project_env,
        sources: given,
    } = given;
    // A warm sandbox for the install, unless the build runs the operator's generator first
    // (its cgroup would hold the generator's processes before the install's).
    let warm = match &b.warm {
        Some(pool) if !version.generate => pool.take(),
        _ => None,
    };
    let cell = match warm {
        Some(warm) => Cell::warm(warm, ws.root()),
        None => {
            let name = format!("{}-{}", version.id, ulid::Ulid::new());
            b.confinement
                .cell(&name, ws.root())
                .map_err(|e| infra(Step::Fetch, format!("preparing the build's sandbox: {e}")))?
        }
    };
    let cell = std::sync::Arc::new(cell);
    let env = StepEnv::new(
        &ws.home(),
        &ws.tmp(),
        // The build's own: the shared metadata cache is the store's user's alone.
        &ws.home().join(".cache").join("pnpm"),
        b.settings.builder.build_timeout.as_secs(),
    )
    .stopped_by(stopper.token().clone(), b.settings.fleet.cancel_grace)
    .confined(
        b.confinement.clone(),
        cell.clone(),
        b.settings.builder.max_log_bytes as u64,
    )
    .counted_by(b.metrics.clone());
    let stations = Stations {
        b,
        version,
        ws,
        log,
        env: &env,
        ids: cell.ids(),
        deadline: Instant::now() + b.settings.builder.build_timeout,
        project: ws.project(),
        app: match version.settings.root_dir.as_deref() {
            Some(dir) => ws.project().join(dir),
            None => ws.project(),
        },
        app_dir: version.settings.root_dir.clone().unwrap_or_default(),
        framework: std::sync::OnceLock::new(),
        package_json: std::sync::OnceLock::new(),
        build_env: std::sync::OnceLock::new(),
        project_env,
        given,
    };
    // Nothing a build is told names a folder of the builder's.
    let (project, root) = (ws.project(), ws.root().to_owned());
    let builder = &b.settings.builder;
    let store_cache = builder.pnpm_store.with_extension("cache");
    let farm = [
        (store_cache.as_path(), "<pnpm-store-cache>"),
        (builder.pnpm_store.as_path(), "<pnpm-store>"),
        (builder.work_dir.as_path(), "<work-dir>"),
    ];
    let result = match stations.run(metrics).await {
        Ok(mut success) => {
            for d in &mut success.diagnostics {
                d.message = log
                    .redact(&failure::scrub(&d.message, &[&project, &root], &farm))
                    .into_owned();
            }
            Ok(success)
        }
        Err(failure) => {
            // Nothing a build is told holds a secret value either (its messages are made of
            // what the steps printed, redacted already, and of Kiln's own words).
            let mut failure = Failure {
                framework: stations.framework.get().copied(),
                ..failure.scrubbed(&[&project, &root], &farm)
            };
            failure.message = log.redact(&failure.message).into_owned();
            for d in &mut failure.diagnostics {
                d.message = log.redact(&d.message).into_owned();
                if let Some(file) = &d.file {
                    d.file = Some(log.redact(file).into_owned());
                }
            }
            Err(failure)
        }
    };
    match (cell.unused_warm(), &b.warm) {
        // No process ran: the warm sandbox and its cgroup serve another build.
        (Some(warm), Some(pool)) => pool.give_back(warm),
        _ => {
            if let Some(cgroup) = &cell.cgroup {
                cgroup.remove().await;
            }
        }
    }
    result
}

/// What every station of one attempt works with.
struct Stations<'a> {
    b: &'a Builder,
    version: &'a Version,
    ws: &'a Workspace,
    log: &'a BuildLog,
    env: &'a StepEnv,
    /// The build's uid and gid, when the daemon switches users.
    ids: Option<(u32, u32)>,
    /// When the build's time is up (`KILN_BUILD_TIMEOUT_SECS` after the first station).
    deadline: Instant,
    /// The top of the tree (the workspace's project folder).
    project: PathBuf,
    /// The app folder (`settings.rootDir`, else the top), where the checks and the build run.
    app: PathBuf,
    /// The app folder from the top of the tree (`""`: the top).
    app_dir: String,
    /// The framework package.json names, once read.
    framework: std::sync::OnceLock<&'static str>,
    /// package.json's text, once read (pnpm's errors point into it).
    package_json: std::sync::OnceLock<String>,
    /// The environment of the build and checks steps: `env` with the project's values.
    build_env: std::sync::OnceLock<StepEnv>,
    /// The project's values (see [`crate::job::env`]), for the build and checks steps.
    project_env: &'a [(String, String)],
    /// The version's source manifest, when the attempt read it already (else fetch reads it).
    given: Option<&'a Manifest>,
}

impl Stations<'_> {
    /// Runs the stations in order; the first failure ends the build.
    async fn run(&self, metrics: &mut Metrics) -> Result<Success, Failure> {
        let (mut sources, fetched_package_json) = self.fetch().await?;
        let _ = self.build_env.set(self.env.with_project_env(self.project_env));
        let original_sources = sources.clone();
        let metadata = match self.version.generate {
            true => Some(self.generate(&mut sources, metrics).await?),
            false => None,
        };
        // As fetched, unless the generator wrote the tree.
        let top_package_json = match self.version.generate {
            true => read_in_project(
                &self.project,
                "package.json",
                self.b.settings.api.max_file_bytes as u64,
            )
            .await
            .map_err(|e| fail(Step::Install, reading(&e)))?,
            false => fetched_package_json,
        };
        // The app's, under settings.rootDir.
        let package_json = match self.app_dir.is_empty() {
            true => top_package_json.clone(),
            false => {
                let step = if self.version.generate {
                    Step::Install
                } else {
                    Step::Fetch
                };
                Some(self.app_package_json(step).await?)
            }
        };
        let mut found = diagnostics::Parsed::default();
        let (output_root, framework) = if let Some(raw) = package_json {
            let pkg = package_json_value(&raw)?;
            let _ = self.package_json.set(String::from_utf8_lossy(&raw).into_owned());
            let framework = detect::framework_of(&pkg).map(|(name, _)| name);
            if let Some(name) = framework {
                let _ = self.framework.set(name);
            }
            let layout = self.layout(&sources, &pkg, top_package_json.as_deref())?;
            let lockfile = self.install(&pkg, &layout, &mut sources, metrics).await?;
            if let Some(auditor) = &self.b.auditor {
                audit::audit(auditor, self.b.settings.audit.mode, lockfile, self.log).await?;
            }
            found = self.check(metrics).await?;
            let built_since = self.build(&pkg, metrics).await?;
            let output = self.output(&pkg, built_since)?;
            (Some(self.in_app(&output.dir)), output.framework.or(framework))
        } else {
            self.without_package_json()?
        };
        let output_dir = output_root.clone().unwrap_or_else(|| ".".to_owned());
        let output_manifest_key = self.upload(output_root, metrics).await?;
        Ok(Success {
            sources: (sources != original_sources).then_some(sources),
            output_manifest_key,
            framework: framework.map(str::to_owned),
            output_dir: Some(output_dir),
            diagnostics: found.diagnostics,
            diagnostics_total: found.total,
            metadata,
        })
    }

    /// What package.json says of the tools it expects: `engines.node` this builder's Node does
    /// not satisfy fails the install; another package manager is noted in the log.
    fn tools(&self, pkg: &serde_json::Value) -> Result<(), Failure> {
        let toolchain = &self.b.toolchain;
        if let Some(note) = package_manager::package_manager_note(pkg, toolchain.pnpm.as_deref()) {
            self.log.line(&note);
        }
        match package_manager::check_engines(pkg, toolchain.node.as_deref()) {
            Ok(None) => Ok(()),
            Ok(Some(note)) => {
                self.log.line(&note);
                Ok(())
            }
            Err(message) => {
                let mut d = kiln_shared::domain::Diagnostic::kiln(Step::Install, "engines_node", &message);
                d.file = Some(self.in_app("package.json"));
                d.line = self
                    .package_json
                    .get()
                    .and_then(|text| package_manager::engines_line(text));
                Err(fail(Step::Install, message)
                    .code("engines_node")
                    .with(diagnostics::Parsed {
                        diagnostics: vec![d],
                        total: 1,
                    }))
            }
        }
    }

    /// The environment of the build and checks steps (the project's values added).
    fn build_env(&self) -> &StepEnv {
        self.build_env.get().unwrap_or(self.env)
    }

    /// Hands an event of this attempt to the daemon's recorder.
    fn emit(&self, kind: EventType, data: serde_json::Value) {
        emit(self.b, self.version, kind, data);
    }

    /// fetch: the version's sources, laid out in the workspace; and package.json's bytes
    /// when they have one.
    async fn fetch(&self) -> Result<(Manifest, Option<Bytes>), Failure> {
        let sources = match self.given {
            Some(sources) => sources.clone(),
            None => self
                .version
                .sources(&self.b.artifacts)
                .await
                .map_err(|e| store_failure(Step::Fetch, &e))?,
        };
        let package_json = materialize(self.b, self.version, &sources, self.ws, self.ids).await?;
        Ok((sources, package_json))
    }

    /// generate: the operator's generator, given the prompt and the sources, writes the
    /// project's tree; its files join `sources`. Returns its metadata.
    async fn generate(
        &self,
        sources: &mut Manifest,
        metrics: &mut Metrics,
    ) -> Result<serde_json::Value, Failure> {
        let (b, version, project, ids) = (self.b, self.version, &self.project, self.ids);
        let (env, deadline, log) = (self.env, self.deadline, self.log);
        let started = StdInstant::now();
        self.emit(EventType::GenerateStarted, json!({}));
        let command = b.settings.builder.generator_cmd.as_deref().ok_or_else(|| {
            fail(
                Step::Generate,
                "this builder has no generator configured (KILN_GENERATOR_CMD)",
            )
        })?;
        let mut files = Vec::with_capacity(sources.files.len());
        // Read beneath the project folder, each bounded by the larger of its size in the manifest
        // and KILN_MAX_FILE_MB.
        let wanted: Vec<(String, u64)> = sources
            .files
            .iter()
            .map(|(path, entry)| (path.clone(), entry.size.max(b.settings.api.max_file_bytes as u64)))
            .collect();
        let dir = project.clone();
        let read = tokio::task::spawn_blocking(move || {
            let fd = crate::beneath::open_dir_path(&dir)?;
            wanted
                .into_iter()
                .map(|(path, max)| {
                    crate::beneath::read_beneath(&fd, &path, max)?
                        .map(|content| (path.clone(), content))
                        .ok_or(crate::beneath::BeneathError::Missing { path })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| infra(Step::Generate, e.to_string()))?
        .map_err(|e| beneath_failure(Step::Generate, format!("reading the sources: {e}"), &e))?;
        for (path, content) in &read {
            files.push(generator::file_json(path, content));
        }
        let input = serde_json::json!({
            "prompt": version.prompt,
            "userId": version.user_id,
            "projectId": version.project_id,
            "files": files,
        });
        let (generated, meta) = generator::generate(
            command,
            &env.with_network(Network::Host),
            project,
            deadline,
            log,
            input,
            b.settings.api.file_limits(),
        )
        .await
        .map_err(|e| fail(Step::Generate, e).code("generator_failed"))?;
        // Written by the daemon beneath the project folder, through no link the generator may
        // have left, and owned by the build's user.
        let generated: Vec<(String, Bytes)> = generated
            .into_iter()
            .map(|file| (file.path.as_str().to_owned(), Bytes::from(file.content)))
            .collect();
        let (dir, to_write) = (project.clone(), generated.clone());
        tokio::task::spawn_blocking(move || {
            let fd = crate::beneath::open_dir_path(&dir)?;
            to_write
                .iter()
                .try_for_each(|(path, content)| crate::beneath::write_beneath(&fd, path, content, ids))
        })
        .await
        .map_err(|e| infra(Step::Generate, e.to_string()))?
        .map_err(|e| beneath_failure(Step::Generate, format!("writing the generated files: {e}"), &e))?;
        for (path, content) in generated {
            let blob = b
                .artifacts
                .put_blob(content)
                .await
                .map_err(|e| store_failure(Step::Generate, &e))?;
            sources.insert_stored(&path, blob);
        }
        metrics.generate_ms = ms_since(started);
        self.emit(EventType::GenerateCompleted, json!({ "ms": metrics.generate_ms }));
        Ok(meta)
    }

    /// install: `pnpm install` in two halves, the store's (pnpm alone, as the store's user)
    /// then the build's (its install scripts, as the build's uid), in the folder `layout`
    /// says; then the project's `installCommand`, as the build. The lockfile it wrote is kept
    /// with the sources and returned.
    async fn install(
        &self,
        pkg: &serde_json::Value,
        layout: &layout::Layout,
        sources: &mut Manifest,
        metrics: &mut Metrics,
    ) -> Result<Option<Bytes>, Failure> {
        let (b, version, ws, project, ids) = (self.b, self.version, self.ws, &self.project, self.ids);
        let (env, log, dir) = (self.env, self.log, layout.dir.as_path());
        let frozen = sources.files.contains_key(&layout.lockfile)
            && package_json_unchanged(b, version, sources, &layout.described_by).await;
        let install = scripts::install_args(&b.settings.builder.pnpm_store, frozen);
        let install: Vec<&str> = install.iter().map(String::as_str).collect();
        let started = StdInstant::now();
        self.tools(pkg)?;
        // The project's warm tree on this host, when its dependency key matches: no install.
        let warm = self.warm_tree(layout, sources).await;
        if let deps::Warm::Restored { key, took, files } = &warm {
            log.line(&format!(
                "[kiln] dependencies: install skipped: {} (node {}, pnpm {}); its copy took {} ms ({files} files)",
                warm.reason().unwrap_or_default(),
                key.parts["node"],
                key.parts["pnpm"],
                took.as_millis(),
            ));
            metrics.install_ms = ms_since(started);
            self.emit(
                EventType::InstallSkipped,
                json!({ "ms": metrics.install_ms, "reason": warm.reason(), "depKey": &key.digest()[..16] }),
            );
            return keep_lockfile(&b.artifacts, project, &layout.lockfile, sources).await;
        }
        if let Some(why) = warm.reason() {
            log.line(&format!("[kiln] dependencies: installing ({why})"));
        }
        self.emit(
            EventType::InstallStarted,
            json!({ "frozenLockfile": frozen, "warmTree": warm.reason() }),
        );
        if version.generate {
            // The generator's process may have left a `node_modules` of links (into the store,
            // which the store's half can write): the install starts without one. Then its
            // files, written by the daemon, go to the build's user.
            let (root, modules) = (ws.root().to_owned(), project.join("node_modules"));
            on_disk(
                Step::Install,
                "preparing the generator's tree for the install",
                move || {
                    match std::fs::remove_dir_all(&modules) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    }
                    Confinement::hand_over(&root, ids)
                },
            )
            .await?;
        }
        // A project that came with another manager's lockfile keeps the versions it pins.
        if let Some(lockfile) =
            package_manager::foreign_lockfile(|name| sources.files.contains_key(&layout.path(name)))
        {
            log.line(&format!(
                "[kiln] {lockfile} and no pnpm-lock.yaml: `pnpm import` turns it into one, so the install keeps the versions it pins"
            ));
            let import = package_manager::import_args(&b.settings.builder.pnpm_store);
            let import: Vec<&str> = import.iter().map(String::as_str).collect();
            self.run_in(
                Step::Install,
                &env.as_store().with_network(Network::Registry),
                dir,
                "pnpm",
                &import,
                None,
            )
            .await?;
        }
        // The store's half: pnpm alone, no code of the project's or its dependencies'.
        self.run_in(
            Step::Install,
            &env.as_store().with_network(Network::Registry),
            dir,
            "pnpm",
            &install,
            None,
        )
        .await?;
        let (confinement, root) = (b.confinement.clone(), project.clone());
        let installed = on_disk(
            Step::Install,
            "handing the installed tree to the build's user",
            move || confinement.take_back(&root, ids),
        )
        .await?;
        // The build's half: lifecycle scripts and allowed dependency scripts, as the build's
        // own uid, when there are any to run.
        if let Some(why) =
            scripts::pending(dir, &layout.package_json, &b.settings.sandbox.allow_build_scripts)
                .await
                .map_err(|e| fail(Step::Install, e))?
        {
            let confinement = b.confinement.clone();
            on_disk(
                Step::Install,
                "giving the build its own copies of the packages' commands",
                move || confinement.own_commands(&installed, ids),
            )
            .await?;
            log.line(&format!("[kiln] running install scripts: {why}"));
            let rebuild = scripts::rebuild_args(&b.confinement.allowed_scripts());
            let rebuild: Vec<&str> = rebuild.iter().map(String::as_str).collect();
            self.run_in(
                Step::Install,
                &env.with_network(Network::Registry),
                dir,
                "pnpm",
                &rebuild,
                None,
            )
            .await?;
        }
        // The project's own, after Kiln's install (never instead of the store's half), as the
        // build, with the registry's network like the install scripts.
        if let Some(command) = &version.settings.install_command {
            let env = env.with_network(Network::Registry);
            self.run_command(Step::Install, &env, "installCommand", command)
                .await?;
        }
        let lockfile = keep_lockfile(&b.artifacts, project, &layout.lockfile, sources).await?;
        // Kept before the checks and the build run: what they write is not handed on.
        if !matches!(warm, deps::Warm::Off) {
            self.keep_tree(layout, sources).await;
        }
        metrics.install_ms = ms_since(started);
        self.emit(
            EventType::InstallCompleted,
            json!({ "ms": metrics.install_ms, "frozenLockfile": frozen }),
        );
        Ok(lockfile)
    }

    /// build: the project's `buildCommand`, else `pnpm run build` when package.json has a
    /// build script, in the app folder; when it started (what the output station takes as the
    /// build's own writes), or `None` when nothing ran.
    async fn build(
        &self,
        pkg: &serde_json::Value,
        metrics: &mut Metrics,
    ) -> Result<Option<std::time::SystemTime>, Failure> {
        let log = self.log;
        let started = StdInstant::now();
        self.emit(EventType::BuildStepStarted, json!({}));
        let mut built_since = None;
        if let Some(command) = &self.version.settings.build_command {
            built_since = Some(std::time::SystemTime::now());
            self.run_command(Step::Build, self.build_env(), "buildCommand", command)
                .await?;
        } else if pkg.pointer("/scripts/build").is_some() {
            built_since = Some(std::time::SystemTime::now());
            self.run_step(Step::Build, self.build_env(), "pnpm", &["run", "build"])
                .await?;
        } else {
            log.line("[kiln] package.json has no build script; publishing the output folder as is");
        }
        metrics.build_ms = ms_since(started);
        self.emit(EventType::BuildStepCompleted, json!({ "ms": metrics.build_ms }));
        Ok(built_since)
    }

    /// output: the folder to publish, relative to the app folder: the project's `outputDir`, or
    /// the one found beneath the app folder (one the build wrote, when it ran a script).
    fn output(
        &self,
        pkg: &serde_json::Value,
        built_since: Option<std::time::SystemTime>,
    ) -> Result<detect::Output, Failure> {
        let app = self
            .open_app()
            .map_err(|e| beneath_failure(Step::Output, e.to_string(), &e))?;
        match &self.version.settings.output_dir {
            Some(dir) => detect::named_output_dir(&app, pkg, dir, built_since),
            None => detect::output_dir(&app, pkg, built_since),
        }
        .map_err(|e| fail(Step::Output, e.message).code(e.code))
    }

    /// upload: the output's files (the output folder's, else the whole tree's but
    /// `node_modules`) collected beneath the project folder and stored; returns the output
    /// manifest's key.
    async fn upload(&self, output_root: Option<String>, metrics: &mut Metrics) -> Result<String, Failure> {
        let (b, version, project) = (self.b, self.version, &self.project);
        let started = StdInstant::now();
        self.emit(EventType::UploadStarted, json!({}));
        let limits = publish::OutputLimits {
            max_bytes: b.settings.builder.max_output_bytes,
            max_files: b.settings.builder.max_output_files,
        };
        // The output folder is opened beneath the project folder (itself not a link): a link
        // there leading out of the project fails the build, whatever the build made it.
        let dir = project.clone();
        let files = tokio::task::spawn_blocking(move || {
            let project = crate::beneath::open_dir_path(&dir)
                .map_err(|e| beneath_failure(Step::Output, e.to_string(), &e))?;
            let root = match output_root {
                Some(name) => crate::beneath::open_dir_beneath(&project, name)
                    .map_err(|e| beneath_failure(Step::Output, format!("the output folder {e}"), &e))?,
                None => project,
            };
            publish::collect(root, limits, &["node_modules"]).map_err(|e| {
                if e.is_the_outputs() {
                    output_failure(Step::Output, e)
                } else {
                    publish_failure(e)
                }
            })
        })
        .await
        .map_err(|e| infra(Step::Output, e.to_string()))??;
        if files.is_empty() {
            return Err(output_failure(Step::Output, PublishError::Empty));
        }
        let (output, new_blobs) = publish::upload(&b.artifacts, files)
            .await
            .map_err(publish_failure)?;
        let output_key = Artifacts::manifest_key(version.id, ManifestKind::Output);
        b.artifacts
            .put_manifest(&output_key, &output)
            .await
            .map_err(|e| store_failure(Step::Upload, &e))?;
        metrics.upload_ms = ms_since(started);
        self.emit(
            EventType::UploadCompleted,
            json!({ "files": output.files.len(), "bytes": output.total_bytes() }),
        );
        metrics.output_bytes = Some(output.total_bytes() as i64);
        metrics.file_count = Some(output.files.len() as i32);
        tracing::info!(files = output.files.len(), new_blobs, "output stored");
        Ok(output_key)
    }
}

/// package.json's value; a file that is not JSON fails the install, saying where.
fn package_json_value(raw: &[u8]) -> Result<serde_json::Value, Failure> {
    serde_json::from_slice(raw).map_err(|e| {
        let message = format!("package.json is not valid JSON: {e}");
        let mut d = kiln_shared::domain::Diagnostic::kiln(Step::Install, "invalid_package_json", &message);
        d.tool = "kiln".to_owned();
        d.file = Some("package.json".to_owned());
        d.line = u32::try_from(e.line()).ok().filter(|l| *l > 0);
        d.column = u32::try_from(e.column()).ok().filter(|c| *c > 0);
        fail(Step::Install, message)
            .code("invalid_package_json")
            .with(diagnostics::Parsed {
                diagnostics: vec![d],
                total: 1,
            })
    })
}

fn ms_since(t: StdInstant) -> Option<i64> {
    Some(t.elapsed().as_millis() as i64)
}
