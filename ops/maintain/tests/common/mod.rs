//! What the maintenance tests share: a farm on a real PostgreSQL and Redis (a database and a
//! key prefix per test) with a filesystem artifact store in a folder of its own, and versions
//! made with real manifests and blobs.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use kiln_ops::{Farm, Outcome, Report};
use kiln_shared::config::MaintenanceSettings;
use kiln_shared::db::PgPool;
use kiln_shared::domain::VersionId;
use kiln_shared::preview::PreviewUrls;
use kiln_shared::redis::{Keys, Queue};
use kiln_shared::store::{Artifacts, FsStore, Manifest};
use kiln_testkit::env::test as test_env;

pub struct TestFarm {
    pub farm: Farm,
    pub fs: FsStore,
    pub db_url: String,
    pub redis_prefix: String,
    pub dir: tempfile::TempDir,
}

impl std::ops::Deref for TestFarm {
    type Target = Farm;
    fn deref(&self) -> &Farm {
        &self.farm
    }
}

pub async fn farm() -> TestFarm {
    farm_with(MaintenanceSettings::default()).await
}

pub async fn farm_with(settings: MaintenanceSettings) -> TestFarm {
    let admin_url = test_env::database_url();
    let db_url = kiln_shared::db::create_database(&admin_url, "kiln_test")
        .await
        .unwrap();
    let db = PgPool::connect(&db_url).await.unwrap();
    kiln_shared::db::migrate(&db).await.unwrap();
    let redis_url = test_env::redis_url();
    let redis = kiln_shared::redis::connect(&redis_url.into(), std::time::Duration::from_secs(5)).unwrap();
    let redis_prefix = format!("kiln-test-{}", ulid::Ulid::new());
    let dir = tempfile::tempdir().unwrap();
    let fs = FsStore::new(dir.path().join("artifacts"));
    TestFarm {
        farm: Farm {
            db,
            queue: Queue::new(redis, Keys::new(redis_prefix.clone())),
            artifacts: Artifacts::new(Arc::new(fs.clone())),
            urls: PreviewUrls {
                scheme: "http".into(),
                domain: "localhost".into(),
                port: Some(8081),
            },
            settings,
            lease: std::time::Duration::from_secs(60),
        },
        fs,
        db_url,
        redis_prefix,
        dir,
    }
}

pub fn ran(outcome: Outcome) -> Report {
    match outcome {
        Outcome::Ran(report) => *report,
        Outcome::Busy { holder, .. } => panic!("busy: {holder}"),
    }
}

/// A version to make.
pub struct Spec<'a> {
    pub user: &'a str,
    pub project: &'a str,
    pub days_old: f64,
    /// The output files' contents (each a blob).
    pub files: Vec<Vec<u8>>,
    pub status: &'a str,
    pub rollback_of: Option<VersionId>,
    pub pinned: bool,
}

impl<'a> Spec<'a> {
    pub fn deployed(project: &'a str, days_old: f64, files: Vec<Vec<u8>>) -> Self {
        Self {
            user: "u1",
            project,
            days_old,
            files,
            status: "deployed",
            rollback_of: None,
            pinned: false,
        }
    }
}

/// Stores the blobs and the output manifest of `spec`, then its row, as if a build made it
/// `days_old` days ago (its id's time too, so ids sort as the versions were made).
pub async fn version(farm: &Farm, spec: Spec<'_>) -> VersionId {
    let made = chrono::Utc::now() - chrono::Duration::milliseconds((spec.days_old * 86_400_000.0) as i64);
    let id =
        VersionId::parse(&ulid::Ulid::from_parts(made.timestamp_millis() as u64, rand_bits()).to_string())
            .unwrap();
    let mut manifest = Manifest::default();
    for (i, body) in spec.files.iter().enumerate() {
        let blob = farm.artifacts.put_blob(Bytes::from(body.clone())).await.unwrap();
        manifest.insert_stored(&format!("assets/f{i}.js"), blob);
    }
    let key = match spec.rollback_of {
        // A rollback shares its target's manifest.
        Some(target) => format!("manifests/{target}/output.json"),
        None => {
            let key = format!("manifests/{id}/output.json");
            farm.artifacts.put_manifest(&key, &manifest).await.unwrap();
            key
        }
    };
    sqlx::query(
        "insert into versions (id, user_id, project_id, project_label, kind, parent_version_id,
             status, error, failed_step, output_manifest_key, created_at, finished_at, pinned)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12)",
    )
    .bind(id.to_string())
    .bind(spec.user)
    .bind(spec.project)
    .bind(format!("{}-{}", spec.user, spec.project).to_ascii_lowercase())
    .bind(if spec.rollback_of.is_some() {
        "rollback"
    } else {
        "build"
    })
    .bind(spec.rollback_of.map(|v| v.to_string()))
    .bind(spec.status)
    .bind((spec.status == "failed").then_some("build script failed"))
    .bind((spec.status == "failed").then_some("build"))
    .bind((spec.status == "deployed").then_some(key))
    .bind(made)
    .bind(spec.pinned)
    .execute(&farm.db)
    .await
    .unwrap();
    id
}

fn rand_bits() -> u128 {
    ulid::Ulid::new().random()
}

/// Makes an object look `secs` seconds old (for the grace period and the trash's time).
pub fn age(fs: &FsStore, key: &str, secs: u64) {
    age_file(&fs.path_of(key), secs);
}

/// Makes every object under `root` look `secs` seconds old.
pub fn age_all(root: &Path, secs: u64) {
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            age_all(&entry.path(), secs);
        } else {
            age_file(&entry.path(), secs);
        }
    }
}

fn age_file(path: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(secs))
        .unwrap();
}

/// The ids of the versions left.
pub async fn ids(farm: &Farm) -> Vec<VersionId> {
    let rows: Vec<(String,)> = sqlx::query_as("select id from versions order by id")
        .fetch_all(&farm.db)
        .await
        .unwrap();
    rows.iter().map(|(id,)| VersionId::parse(id).unwrap()).collect()
}

/// Every blob of every version left can be read (from wherever it is). A version deleted
/// while this looks (by a concurrent writer) is skipped.
pub async fn all_readable(farm: &Farm) {
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("select id, output_manifest_key from versions order by id")
            .fetch_all(&farm.db)
            .await
            .unwrap();
    for (id, key) in rows {
        let Some(key) = key else { continue };
        if let Err(problem) = readable(farm, &key).await {
            let still: bool = sqlx::query_scalar("select exists (select 1 from versions where id = $1)")
                .bind(&id)
                .fetch_one(&farm.db)
                .await
                .unwrap();
            assert!(!still, "version {id}: {problem}");
        }
    }
}

/// Every file of the manifest `key` reads back and hashes to its name.
pub async fn readable(farm: &Farm, key: &str) -> Result<(), String> {
    let manifest = farm
        .artifacts
        .get_manifest(key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("manifest {key} is gone"))?;
    for (path, entry) in &manifest.files {
        let body = farm
            .artifacts
            .read(entry)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        if kiln_shared::store::sha256_hex(&body) != entry.hash {
            return Err(format!("{path}: wrong bytes"));
        }
    }
    Ok(())
}
