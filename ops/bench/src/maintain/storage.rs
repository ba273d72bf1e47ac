//! The storage figure: examples/vite-react built 20 times through an in-process farm, each
//! version changing one line of src/App.tsx: the bytes Kiln's store holds for the 20 versions
//! (distinct blobs, manifests, the source manifests kept in the rows) against a zip per version
//! of its sources and its output (the system `zip`, default compression).

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use kiln_shared::domain::read_tree;
use kiln_shared::store::{Artifacts, FsStore, Manifest};
use serde_json::json;

use crate::farm::{Env, Farm};
use crate::summary::{Outcome, Summary};

pub const STORAGE_VERSIONS: usize = 20;
const USER: &str = "bench-user";
const PROJECT: &str = "storage";
const APP: &str = "src/App.tsx";
const ANCHOR: &str = "Pick a time and we will see you soon.";

#[derive(Debug, Clone)]
pub struct Storage {
    /// Distinct blobs in the store, and their bytes.
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Manifests in the store (outputs; sources when too big for the row), and their bytes.
    pub manifests: u64,
    pub manifest_bytes: u64,
    /// Source manifests kept in the version rows (JSON text bytes).
    pub row_manifest_bytes: u64,
    /// One zip per version of its sources and output.
    pub zip_bytes: u64,
    /// The files of the 20 versions, uncompressed and not deduplicated.
    pub raw_bytes: u64,
    pub files_per_version: u64,
    /// Blob bytes the first version added to the store, and each later one (mean).
    pub first_new_bytes: u64,
    pub later_new_bytes: f64,
    /// The biggest blob (the bundle, whose every change is a new blob).
    pub largest_blob: u64,
}

impl Storage {
    pub fn kiln_bytes(&self) -> u64 {
        self.blob_bytes + self.manifest_bytes + self.row_manifest_bytes
    }

    /// Content-addressed bytes per zipped byte (below 1: content addressing stores less).
    pub fn ratio(&self) -> f64 {
        self.kiln_bytes() as f64 / self.zip_bytes as f64
    }
}

impl Summary for Storage {
    fn print(&self) -> Outcome {
        println!(
            "storage     {} versions of the Vite example, one file changed each: content-addressed {:.2} MB vs a zip per version {:.2} MB  kiln/zips {:.2}  (uncompressed, not deduplicated {:.2} MB; each later version adds {:.3} MB of content)",
            STORAGE_VERSIONS,
            self.kiln_bytes() as f64 / 1e6,
            self.zip_bytes as f64 / 1e6,
            self.ratio(),
            self.raw_bytes as f64 / 1e6,
            self.later_new_bytes / 1e6
        );
        Outcome::met(true)
    }
}

/// The storage figure alone (`kiln-bench storage`), with its details.
pub async fn storage_only(env: &Env, example: &Path) -> anyhow::Result<Storage> {
    let s = storage(env, example).await?;
    print_storage(&s);
    Ok(s)
}

pub(super) async fn storage(env: &Env, example: &Path) -> anyhow::Result<Storage> {
    let farm = Farm::start(env, 1).await?;
    let result = measure_storage(env, &farm, example).await;
    let dir = farm.stop().await;
    tokio::task::spawn_blocking(move || drop(dir)).await?;
    result
}

/// A version's id, source manifest (in the row, or its key) and output manifest key.
type VersionManifests = (String, Option<String>, Option<String>, Option<String>);

async fn measure_storage(env: &Env, farm: &Farm, example: &Path) -> anyhow::Result<Storage> {
    let files = read_tree(example).with_context(|| format!("reading {}", example.display()))?;
    let app = files
        .iter()
        .find(|f| f.path == APP)
        .with_context(|| format!("the example has {APP}"))?
        .content
        .clone();
    if !app.contains(ANCHOR) {
        bail!("{APP} of the example no longer contains {ANCHOR:?}; update ops/bench/src/maintain/storage.rs");
    }
    let first = farm
        .build(&json!({ "userId": USER, "projectId": PROJECT, "files": files }))
        .await
        .context("the first build")?;
    eprintln!(
        "[bench] storage: version 1/{STORAGE_VERSIONS} (the whole project) {:.1} s",
        first.elapsed.as_secs_f64()
    );
    for k in 2..=STORAGE_VERSIONS {
        let edited = app.replace(
            ANCHOR,
            &format!("Pick a time and we will see you soon (change {k})."),
        );
        let delta = json!({ "userId": USER, "projectId": PROJECT,
            "files": [{ "path": APP, "content": edited }] });
        let built = farm.build(&delta).await.with_context(|| format!("build {k}"))?;
        eprintln!(
            "[bench] storage: version {k}/{STORAGE_VERSIONS} ({APP} changed) {:.1} s",
            built.elapsed.as_secs_f64()
        );
    }

    use secrecy::ExposeSecret;
    let pool = sqlx::PgPool::connect(farm.settings.database.url.expose_secret()).await?;
    let rows: Vec<VersionManifests> = sqlx::query_as(
        "select id, source_manifest::text, source_manifest_key, output_manifest_key from versions
         where user_id = $1 and project_id = $2 and status = 'deployed' order by id",
    )
    .bind(USER)
    .bind(PROJECT)
    .fetch_all(&pool)
    .await?;
    pool.close().await;
    if rows.len() != STORAGE_VERSIONS {
        bail!("{} deployed versions, not {STORAGE_VERSIONS}", rows.len());
    }

    let root = farm.artifacts_dir.clone();
    let (blobs, blob_bytes) = du(&root.join("blobs"))?;
    let (manifests, manifest_bytes) = du(&root.join("manifests"))?;
    let artifacts = Artifacts::new(Arc::new(FsStore::new(root)));
    let scratch = tempfile::Builder::new()
        .prefix("storage-zips-")
        .tempdir_in(&env.tmp)?;
    let mut s = Storage {
        blobs,
        blob_bytes,
        manifests,
        manifest_bytes,
        row_manifest_bytes: 0,
        zip_bytes: 0,
        raw_bytes: 0,
        files_per_version: 0,
        first_new_bytes: 0,
        later_new_bytes: 0.0,
        largest_blob: 0,
    };
    let mut seen = std::collections::HashSet::new();
    let mut later = 0u64;
    for (n, (id, row_manifest, source_key, output_key)) in rows.iter().enumerate() {
        let sources: Manifest = match (row_manifest, source_key) {
            (Some(text), _) => {
                s.row_manifest_bytes += text.len() as u64;
                serde_json::from_str(text)?
            }
            (None, Some(key)) => artifacts
                .get_manifest(key)
                .await?
                .with_context(|| format!("{key} is missing"))?,
            (None, None) => bail!("version {id} has no source manifest"),
        };
        let key = output_key
            .as_deref()
            .context("a deployed version has an output")?;
        let output = artifacts
            .get_manifest(key)
            .await?
            .with_context(|| format!("{key} is missing"))?;
        let mut added = 0u64;
        for entry in sources.files.values().chain(output.files.values()) {
            if entry.inline.is_none() && seen.insert(entry.hash.clone()) {
                added += entry.size;
                s.largest_blob = s.largest_blob.max(entry.size);
            }
        }
        if n == 0 {
            s.first_new_bytes = added;
        } else {
            later += added;
        }
        let dir = scratch.path().join(format!("v{n}"));
        let mut count = 0u64;
        for (part, manifest) in [("source", &sources), ("output", &output)] {
            for (path, entry) in &manifest.files {
                let body = artifacts.read(entry).await?;
                let target = dir.join(part).join(path);
                std::fs::create_dir_all(target.parent().context("a file's folder")?)?;
                std::fs::write(&target, &body)?;
                s.raw_bytes += body.len() as u64;
                count += 1;
            }
        }
        s.files_per_version = s.files_per_version.max(count);
        let zip = scratch.path().join(format!("v{n}.zip"));
        let status = tokio::process::Command::new("zip")
            .args(["-q", "-r", "-X"])
            .arg(&zip)
            .args(["source", "output"])
            .current_dir(&dir)
            .status()
            .await
            .context("running zip (Debian package zip)")?;
        if !status.success() {
            bail!("zip of version {id} exited with {status}");
        }
        s.zip_bytes += std::fs::metadata(&zip)?.len();
    }
    s.later_new_bytes = later as f64 / (rows.len().max(2) - 1) as f64;
    eprintln!(
        "[bench] storage: kiln {} B ({} blobs {} B, {} manifests {} B, row source manifests {} B) vs zips {} B: kiln/zips {:.2}",
        s.kiln_bytes(),
        s.blobs,
        s.blob_bytes,
        s.manifests,
        s.manifest_bytes,
        s.row_manifest_bytes,
        s.zip_bytes,
        s.ratio()
    );
    Ok(s)
}

/// Files under `dir` and their bytes (temporary files left out).
fn du(dir: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if !entry.file_name().to_string_lossy().ends_with(".tmp") {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    Ok((files, bytes))
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

pub(super) fn print_storage(s: &Storage) {
    println!(
        "-- storage: examples/vite-react, {STORAGE_VERSIONS} versions built through the farm, one line of {APP} changed each --"
    );
    println!(
        "kiln store {:.2} MB = {} distinct blobs {:.2} MB + {} manifests {:.3} MB + source manifests in rows {:.3} MB",
        mb(s.kiln_bytes()),
        s.blobs,
        mb(s.blob_bytes),
        s.manifests,
        mb(s.manifest_bytes),
        mb(s.row_manifest_bytes)
    );
    println!(
        "zips {:.2} MB ({STORAGE_VERSIONS} zips of sources + output, {} files each); files uncompressed, not deduplicated {:.2} MB",
        mb(s.zip_bytes),
        s.files_per_version,
        mb(s.raw_bytes)
    );
    println!(
        "blob bytes added: first version {:.3} MB, each later one {:.3} MB on average (largest blob {:.3} MB); kiln/zips {:.2}",
        mb(s.first_new_bytes),
        s.later_new_bytes / 1e6,
        mb(s.largest_blob),
        s.ratio()
    );
}
