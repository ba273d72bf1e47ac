//! Part 10: the nightly maintenance job (`kiln-ops maintain`) at scale, and what content
//! addressing saves.
//!
//! - **Maintenance run.** 100,000 deployed versions of 1,000 projects (100 each, made over the
//!   last 60 days: nothing is old enough to archive or delete), each with an output manifest
//!   naming 10 distinct small blobs (1,000,000 blobs), plus 50,000 unreferenced blobs 2 days
//!   old (past the GC's grace period, so the first run moves them to the trash), in a
//!   filesystem store. The store is generated once and kept (`maintain-data/` in the bench's
//!   work folder, complete when its marker says so); the rows go into a fresh database on every
//!   run. The real release binary `kiln-ops maintain --json` then runs twice on it: the first
//!   run does the work (trashes the garbage, sets the 1,000 latest pointers the fresh Redis
//!   lacks), the second finds nothing to do. Each run's wall time and peak RSS are measured.
//! - **Storage.** examples/vite-react built 20 times through an in-process farm, each version
//!   changing one line of src/App.tsx: the bytes Kiln's store holds for the 20 versions
//!   (distinct blobs, manifests, the source manifests kept in the rows) against a zip per
//!   version of its sources and its output (the system `zip`, default compression).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use kiln_shared::domain::VersionId;
use kiln_shared::store::{sha256_hex, Artifacts, BlobPlace, Encoding, FsStore, Manifest};
use serde_json::{json, Value};

use crate::farm::Env;
use crate::summary::{Outcome, Summary};

mod storage;

use storage::{print_storage, storage};
pub use storage::{storage_only, Storage};

pub const PROJECTS: usize = 1_000;
pub const VERSIONS_PER_PROJECT: usize = 100;
pub const VERSIONS: usize = PROJECTS * VERSIONS_PER_PROJECT;
pub const BLOBS_PER_VERSION: usize = 10;
pub const BLOBS: usize = VERSIONS * BLOBS_PER_VERSION;
/// Unreferenced blobs (5% of the referenced ones).
pub const GARBAGE: usize = BLOBS / 20;
/// How old the garbage looks: past the GC's grace period (6 h), within the trash's (7 days).
const GARBAGE_AGE: Duration = Duration::from_secs(2 * 24 * 3600);
/// Versions of a project are spread over this many days (under the 90 days of archiving).
const SPREAD_DAYS: u64 = 59;
/// Projects whose blobs and manifests are written at once.
const PARALLEL: usize = 64;
/// Rows per insert.
const INSERT_BATCH: usize = 5_000;
/// The data's layout; a marker of another format means generating again.
const FORMAT: u64 = 1;

#[derive(Debug, Clone)]
pub struct Run {
    pub wall_s: f64,
    pub max_rss_kb: u64,
    /// `kiln-ops maintain --json`'s report.
    pub report: Value,
}

impl Run {
    pub fn blobs(&self, field: &str) -> u64 {
        self.report["blobs"][field].as_u64().unwrap_or(0)
    }

    pub fn repaired(&self) -> u64 {
        self.report["pointers"]["repaired"].as_u64().unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    /// The generation's time: of this run, or (cached) of the run that made the data.
    pub generation_s: f64,
    pub cached: bool,
    pub insert_s: f64,
    pub first: Run,
    pub second: Run,
    pub storage: Storage,
}

impl Summary for Report {
    fn print(&self) -> Outcome {
        println!(
    "maintain    kiln-ops maintain over {} versions / {} blobs (+{} unreferenced)  1st run {:.1} s, max RSS {:.0} MB ({} trashed, {} pointers set)  2nd run {:.1} s, max RSS {:.0} MB ({} trashed)  | data generated in {:.0} s{}",
    VERSIONS,
    BLOBS,
    GARBAGE,
    self.first.wall_s,
    self.first.max_rss_kb as f64 / 1024.0,
    self.first.blobs("trashed"),
    self.first.repaired(),
    self.second.wall_s,
    self.second.max_rss_kb as f64 / 1024.0,
    self.second.blobs("trashed"),
    self.generation_s,
    if self.cached { " (cached from an earlier run)" } else { "" }
);
        self.storage.print();
        Outcome::met(true)
    }
}

pub async fn run(env: &Env, example: &Path) -> anyhow::Result<Report> {
    let data = env.work_dir().join("maintain-data");
    let (generation_s, cached) = generate(&data).await?;
    let fs = FsStore::new(data.join("artifacts"));
    reset(&fs).await?;
    let (db_url, insert_s) = insert_rows(env, &data).await?;
    let prefix = format!(
        "kiln-bench-maint-{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    let vars = [
        ("KILN_DATABASE_URL", db_url),
        ("KILN_REDIS_URL", env.redis_url.clone()),
        ("KILN_REDIS_PREFIX", prefix),
        (
            "KILN_ARTIFACTS",
            format!("file://{}", data.join("artifacts").display()),
        ),
    ];
    let first = maintain_once(&vars, &data, "first").await?;
    let second = maintain_once(&vars, &data, "second").await?;
    let storage = storage(env, example).await?;
    let report = Report {
        generation_s,
        cached,
        insert_s,
        first,
        second,
        storage,
    };
    print_details(&report);
    Ok(report)
}

// --- The data --------------------------------------------------------------------------------

/// The user and project of project `p` (10 projects per user).
fn names(p: usize) -> (String, String) {
    (format!("bench-user-{:03}", p / 10), format!("site-{}", p % 10))
}

/// How long before the data's base time version `j` of project `p` was made (the newest, j =
/// 99, about now; the oldest 59 days before plus up to 10 hours).
fn age_ms(p: usize, j: usize) -> u64 {
    let step = SPREAD_DAYS * 86_400_000 / VERSIONS_PER_PROJECT as u64;
    (VERSIONS_PER_PROJECT - 1 - j) as u64 * step + p as u64 * 37_000
}

fn version_id(base_ms: u64, p: usize, j: usize) -> anyhow::Result<VersionId> {
    let random = ((p as u128) << 32) | j as u128 | (0xbe4c_u128 << 64);
    let ulid = ulid::Ulid::from_parts(base_ms - age_ms(p, j), random);
    Ok(VersionId::parse(&ulid.to_string())?)
}

/// The content of blob `i` of version `j` of project `p` (34 to 40 bytes, all distinct).
fn blob(p: usize, j: usize, i: usize) -> Bytes {
    Bytes::from(format!("/*kiln-bench*/export const v{p}_{j}_{i}=1;\n"))
}

fn blob_path(i: usize) -> String {
    if i == 0 {
        "index.html".into()
    } else {
        format!("assets/chunk-{i}.js")
    }
}

fn garbage(g: usize) -> Bytes {
    Bytes::from(format!("/*kiln-bench garbage*/export const g{g}=0;\n"))
}

/// Generates the store unless `data`'s marker says it is complete; returns the generation's
/// time and whether the data was cached.
async fn generate(data: &Path) -> anyhow::Result<(f64, bool)> {
    let marker = data.join("complete.json");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let m: Value = serde_json::from_str(&text).unwrap_or_default();
        if m["format"].as_u64() == Some(FORMAT) && m["versions"].as_u64() == Some(VERSIONS as u64) {
            let secs = m["generationSeconds"].as_f64().unwrap_or(f64::NAN);
            eprintln!(
                "[bench] maintain: using the data cached in {} (generated in {secs:.0} s on {}); remove the folder to generate it again",
                data.display(),
                m["generatedAt"].as_str().unwrap_or("?")
            );
            return Ok((secs, true));
        }
    }
    std::fs::create_dir_all(data)?;
    // The base time is kept from an interrupted generation, so that it resumes (blobs already
    // there are not written again) instead of starting over under other ids.
    let base_file = data.join("base.json");
    let base_ms = match std::fs::read_to_string(&base_file)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["baseMs"].as_u64())
    {
        Some(ms) => ms,
        None => {
            let ms = Utc::now().timestamp_millis() as u64;
            std::fs::write(&base_file, json!({ "baseMs": ms }).to_string())?;
            ms
        }
    };
    eprintln!(
        "[bench] maintain: generating {VERSIONS} versions, {BLOBS} blobs and {GARBAGE} unreferenced ones in {} (once; kept for later runs)",
        data.display()
    );
    let started = Instant::now();
    let artifacts = Artifacts::new(Arc::new(FsStore::new(data.join("artifacts"))));
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..PROJECTS {
        while tasks.len() >= PARALLEL {
            tasks.join_next().await.context("a task")???;
        }
        let artifacts = artifacts.clone();
        tasks.spawn(async move {
            for j in 0..VERSIONS_PER_PROJECT {
                let id = version_id(base_ms, p, j)?;
                let mut manifest = Manifest::default();
                for i in 0..BLOBS_PER_VERSION {
                    let stored = artifacts.put_blob(blob(p, j, i)).await?;
                    manifest.insert_stored(&blob_path(i), stored);
                }
                let key = format!("manifests/{id}/output.json");
                artifacts.put_manifest(&key, &manifest).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
        if (p + 1) % 100 == 0 {
            eprintln!(
                "[bench] maintain: {} versions written ({:.0} s)",
                (p + 1) * VERSIONS_PER_PROJECT,
                started.elapsed().as_secs_f64()
            );
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    for chunk in 0..(GARBAGE / 1000) {
        let artifacts = artifacts.clone();
        while tasks.len() >= PARALLEL {
            tasks.join_next().await.context("a task")???;
        }
        tasks.spawn(async move {
            for g in chunk * 1000..(chunk + 1) * 1000 {
                artifacts.put_blob(garbage(g)).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let secs = started.elapsed().as_secs_f64();
    std::fs::write(
        &marker,
        json!({
            "format": FORMAT,
            "versions": VERSIONS,
            "blobs": BLOBS,
            "garbage": GARBAGE,
            "baseMs": base_ms,
            "generationSeconds": secs,
            "generatedAt": Utc::now().to_rfc3339(),
        })
        .to_string(),
    )?;
    eprintln!("[bench] maintain: generated in {secs:.1} s");
    Ok((secs, false))
}

/// Puts the store back as generated: what an earlier run moved to `trash/` or `archive/` goes
/// back to `blobs/`, and the garbage is made 2 days old again.
async fn reset(fs: &FsStore) -> anyhow::Result<()> {
    let fs = fs.clone();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut moved = 0u64;
        for place in [BlobPlace::Trash, BlobPlace::Archive] {
            let dir = fs.path_of(place.prefix().trim_end_matches('/'));
            moved += move_back(&fs, &dir)?;
        }
        let when = SystemTime::now() - GARBAGE_AGE;
        for g in 0..GARBAGE {
            let body = garbage(g);
            let path = fs.path_of(&BlobPlace::Hot.key(&sha256_hex(&body), Encoding::Identity));
            if !path.exists() {
                // Deleted for good by a run long ago.
                std::fs::create_dir_all(path.parent().context("a blob's folder")?)?;
                std::fs::write(&path, &body)?;
            }
            std::fs::File::options()
                .write(true)
                .open(&path)?
                .set_modified(when)?;
        }
        eprintln!(
            "[bench] maintain: store reset ({moved} blobs moved back from trash/ and archive/, {GARBAGE} unreferenced blobs made {} days old) in {:.1} s",
            GARBAGE_AGE.as_secs() / 86_400,
            started.elapsed().as_secs_f64()
        );
        Ok::<_, anyhow::Error>(())
    })
    .await?
}

/// Moves every blob under `dir` (a place's `…/sha256` folder) to `blobs/`.
fn move_back(fs: &FsStore, dir: &Path) -> anyhow::Result<u64> {
    let mut moved = 0;
    let Ok(shards) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    for shard in shards {
        let shard = shard?;
        if !shard.file_type()?.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(shard.path())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let target = fs.path_of(&BlobPlace::Hot.key(&name, Encoding::Identity));
            std::fs::create_dir_all(target.parent().context("a blob's folder")?)?;
            std::fs::rename(entry.path(), &target)?;
            moved += 1;
        }
    }
    Ok(moved)
}

/// A fresh database with the versions' rows; its URL and the insert's time.
async fn insert_rows(env: &Env, data: &Path) -> anyhow::Result<(String, f64)> {
    let marker: Value = serde_json::from_str(&std::fs::read_to_string(data.join("complete.json"))?)?;
    let base_ms = marker["baseMs"].as_u64().context("the marker has baseMs")?;
    let url = kiln_shared::db::create_database(&env.database_url, "kiln_bench_maintain")
        .await
        .context("creating the maintenance database")?;
    let pool = sqlx::PgPool::connect(&url).await?;
    kiln_shared::db::migrate(&pool).await?;
    let started = Instant::now();
    let now = Utc::now();
    let mut rows: Vec<(String, String, String, String, DateTime<Utc>)> = Vec::with_capacity(INSERT_BATCH);
    let mut inserted = 0u64;
    for p in 0..PROJECTS {
        let (user, project) = names(p);
        for j in 0..VERSIONS_PER_PROJECT {
            let id = version_id(base_ms, p, j)?.to_string();
            let made = now - chrono::Duration::milliseconds(age_ms(p, j) as i64);
            rows.push((
                id,
                user.clone(),
                project.clone(),
                format!("{user}-{project}"),
                made,
            ));
            if rows.len() == INSERT_BATCH {
                inserted += insert_batch(&pool, std::mem::take(&mut rows)).await?;
            }
        }
    }
    inserted += insert_batch(&pool, rows).await?;
    sqlx::query("analyze versions").execute(&pool).await?;
    pool.close().await;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("[bench] maintain: {inserted} version rows inserted in {secs:.1} s");
    Ok((url, secs))
}

async fn insert_batch(
    pool: &sqlx::PgPool,
    rows: Vec<(String, String, String, String, DateTime<Utc>)>,
) -> anyhow::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let keys: Vec<String> = rows
        .iter()
        .map(|r| format!("manifests/{}/output.json", r.0))
        .collect();
    let (mut ids, mut users, mut projects, mut labels, mut made) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, user, project, label, at) in rows {
        ids.push(id);
        users.push(user);
        projects.push(project);
        labels.push(label);
        made.push(at);
    }
    let done = sqlx::query(
        "insert into versions (id, user_id, project_id, project_label, kind, status,
             output_manifest_key, created_at, started_at, finished_at, output_bytes, file_count)
         select id, u, p, l, 'build', 'deployed', k, c, c + interval '2 seconds',
             c + interval '20 seconds', 380, 10
         from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
             as t(id, u, p, l, k, c)",
    )
    .bind(ids)
    .bind(users)
    .bind(projects)
    .bind(labels)
    .bind(keys)
    .bind(made)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

// --- The maintenance runs --------------------------------------------------------------------

fn kiln_ops() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .context("the bench binary's folder")?
        .join("kiln-ops");
    if !bin.is_file() {
        bail!(
            "{} is missing: build it with cargo build --release -p kiln-ops (run.sh does)",
            bin.display()
        );
    }
    Ok(bin)
}

const GNU_TIME: &str = "/usr/bin/time";

/// One `kiln-ops maintain --json` run: its wall time, peak RSS (GNU time's `%M`, else the last
/// VmHWM polled every 20 ms) and report.
async fn maintain_once(vars: &[(&str, String)], data: &Path, which: &str) -> anyhow::Result<Run> {
    let bin = kiln_ops()?;
    let rss_file = data.join("maxrss.txt");
    let log_file = data.join(format!("kiln-ops-{which}.log"));
    let _ = std::fs::remove_file(&rss_file);
    let gnu_time = Path::new(GNU_TIME).is_file();
    let mut cmd = if gnu_time {
        let mut c = tokio::process::Command::new(GNU_TIME);
        c.arg("-f").arg("%M").arg("-o").arg(&rss_file).arg(&bin);
        c
    } else {
        tokio::process::Command::new(&bin)
    };
    cmd.args(["maintain", "--json"])
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log_file)?)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut stdout = child.stdout.take().context("kiln-ops's stdout")?;
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut out).await?;
        Ok::<_, std::io::Error>(out)
    });
    let mut hwm = 0u64;
    let status = if gnu_time {
        child.wait().await?
    } else {
        let pid = child.id().context("kiln-ops's pid")?;
        loop {
            if let Some(kb) = vm_hwm(pid) {
                hwm = kb;
            }
            tokio::select! {
                s = child.wait() => break s?,
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    };
    let wall_s = started.elapsed().as_secs_f64();
    let out = reader.await??;
    if !status.success() {
        let log = std::fs::read_to_string(&log_file).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        bail!(
            "kiln-ops maintain ({which} run) exited with {status}: {}\n{}",
            String::from_utf8_lossy(&out).trim(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let max_rss_kb = if gnu_time {
        std::fs::read_to_string(&rss_file)?
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .context("GNU time's %M")?
    } else {
        hwm
    };
    let report: Value = serde_json::from_slice(&out)
        .with_context(|| format!("kiln-ops's report: {}", String::from_utf8_lossy(&out)))?;
    let run = Run {
        wall_s,
        max_rss_kb,
        report,
    };
    let v = &run.report["blobs"]["verify"];
    eprintln!(
        "[bench] maintain: {which} run {wall_s:.1} s (its own report: {} ms), max RSS {:.0} MB; {} versions, {} referenced blobs, {} found in blobs/; trashed {}, deleted {}, restored {}; {} sampled, {} missing, {} corrupt; {} pointers repaired",
        run.report["millis"],
        max_rss_kb as f64 / 1024.0,
        run.blobs("versions"),
        run.blobs("referenced"),
        run.report["blobs"]["hot"]["objects"],
        run.blobs("trashed"),
        run.blobs("deleted"),
        run.blobs("restored"),
        v["sampled"],
        v["missingCount"],
        v["corruptCount"],
        run.repaired(),
    );
    Ok(run)
}

/// The VmHWM (peak resident set) of process `pid`, in kB.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

// --- Storage ---------------------------------------------------------------------------------
fn print_details(r: &Report) {
    println!(
        "-- maintain: kiln-ops maintain --json over {VERSIONS} versions of {PROJECTS} projects, {BLOBS} referenced blobs + {GARBAGE} unreferenced (2 days old), filesystem store --"
    );
    println!(
        "data {} in {:.0} s; rows inserted in {:.1} s",
        if r.cached {
            "cached: generated by an earlier run"
        } else {
            "generated"
        },
        r.generation_s,
        r.insert_s
    );
    for (name, run) in [("first ", &r.first), ("second", &r.second)] {
        println!(
            "{name} run  wall {:.1} s  max RSS {:.0} MB  trashed {}  pointers repaired {}  sampled {}",
            run.wall_s,
            run.max_rss_kb as f64 / 1024.0,
            run.blobs("trashed"),
            run.repaired(),
            run.report["blobs"]["verify"]["sampled"]
        );
    }
    print_storage(&r.storage);
}
