//! Blob GC and verification on a real PostgreSQL and Redis with a filesystem store, and a run
//! of the real `kiln-ops` binary killed half-way.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{age, age_all, all_readable, farm, farm_with, ids, ran, readable, version, Spec};
use kiln_ops::maintain;
use kiln_shared::config::MaintenanceSettings;
use kiln_shared::store::{sha256_hex, BlobPlace, Encoding, ObjectStore};

const HOUR: u64 = 3600;

fn exists(farm: &common::TestFarm, place: BlobPlace, body: &[u8]) -> bool {
    farm.fs
        .path_of(&place.key(&sha256_hex(body), Encoding::Identity))
        .exists()
}

#[tokio::test]
async fn unreferenced_blobs_wait_out_the_grace_period_then_the_trash_then_go() {
    let farm = farm().await;
    let live = version(&farm, Spec::deployed("p", 1.0, vec![b"live".to_vec()])).await;
    // A deleted version's objects, old: its blob, manifest and log.
    let gone = version(&farm, Spec::deployed("p", 2.0, vec![b"orphan".to_vec()])).await;
    farm.artifacts
        .put_log(gone, Bytes::from_static(b"log"))
        .await
        .unwrap();
    sqlx::query("delete from versions where id = $1")
        .bind(gone.to_string())
        .execute(&farm.db)
        .await
        .unwrap();
    age_all(farm.dir.path(), 7 * HOUR);
    // A blob a build is uploading right now (no version names it yet).
    farm.artifacts
        .put_blob(Bytes::from_static(b"uploading"))
        .await
        .unwrap();

    let dry = ran(maintain(&farm, "test", true).await.unwrap());
    assert_eq!((dry.blobs.trashed, dry.blobs.in_grace), (1, 1), "{:?}", dry.blobs);
    assert_eq!((dry.blobs.manifests_deleted, dry.blobs.logs_deleted), (1, 1));
    assert!(
        exists(&farm, BlobPlace::Hot, b"orphan"),
        "a dry run moves nothing"
    );
    assert!(farm.fs.path_of(&format!("manifests/{gone}/output.json")).exists());

    let run = ran(maintain(&farm, "test", false).await.unwrap());
    assert_eq!(
        (run.blobs.trashed, run.blobs.in_grace, run.blobs.deleted),
        (1, 1, 0)
    );
    assert!(exists(&farm, BlobPlace::Trash, b"orphan") && !exists(&farm, BlobPlace::Hot, b"orphan"));
    assert!(exists(&farm, BlobPlace::Hot, b"uploading"), "in its grace period");
    assert!(exists(&farm, BlobPlace::Hot, b"live"));
    assert!(!farm.fs.path_of(&format!("manifests/{gone}/output.json")).exists());
    assert!(!farm.fs.path_of(&format!("logs/{gone}.log")).exists());
    assert_eq!(run.blobs.verify.missing_count + run.blobs.verify.corrupt_count, 0);

    // A week in the trash: deleted for good.
    age(
        &farm.fs,
        &BlobPlace::Trash.key(&sha256_hex(b"orphan"), Encoding::Identity),
        8 * 24 * HOUR,
    );
    let run = ran(maintain(&farm, "test", false).await.unwrap());
    assert_eq!(run.blobs.deleted, 1, "{:?}", run.blobs);
    assert!(!exists(&farm, BlobPlace::Trash, b"orphan"));
    assert_eq!(ids(&farm).await, vec![live]);
    all_readable(&farm).await;
}

#[tokio::test]
async fn a_blob_collected_while_a_new_build_reused_it_is_read_from_the_trash_and_comes_back() {
    let farm = farm().await;
    // An unreferenced old blob goes to the trash...
    farm.artifacts
        .put_blob(Bytes::from_static(b"shared"))
        .await
        .unwrap();
    age_all(farm.dir.path(), 7 * HOUR);
    ran(maintain(&farm, "test", false).await.unwrap());
    assert!(exists(&farm, BlobPlace::Trash, b"shared"));
    // ...just as a build that found it in blobs/ (before the move) records a version naming it.
    let hash = sha256_hex(b"shared");
    let mut manifest = kiln_shared::store::Manifest::default();
    manifest.insert("index.js", hash.clone(), 6);
    let v = version(&farm, Spec::deployed("p", 0.0, vec![])).await;
    farm.artifacts
        .put_manifest(&format!("manifests/{v}/output.json"), &manifest)
        .await
        .unwrap();
    // Readers find it (and move it back).
    assert_eq!(
        &farm.artifacts.get_blob(&hash, Encoding::Identity).await.unwrap()[..],
        b"shared"
    );
    assert!(exists(&farm, BlobPlace::Hot, b"shared"));
    // Had no reader come, the next run would have brought it back.
    farm.fs
        .move_object(
            &BlobPlace::Hot.key(&hash, Encoding::Identity),
            &BlobPlace::Trash.key(&hash, Encoding::Identity),
        )
        .await
        .unwrap();
    let run = ran(maintain(&farm, "test", false).await.unwrap());
    assert_eq!(run.blobs.restored, 1, "{:?}", run.blobs);
    assert!(exists(&farm, BlobPlace::Hot, b"shared"));
}

#[tokio::test]
async fn verification_finds_a_deleted_blob_and_corrupted_ones_and_marks_their_versions() {
    let farm = farm().await;
    let a = version(
        &farm,
        Spec::deployed("p", 3.0, vec![b"deleted".to_vec(), b"fine".to_vec()]),
    )
    .await;
    let b = version(&farm, Spec::deployed("p", 2.0, vec![b"flipped".to_vec()])).await;
    let c = version(&farm, Spec::deployed("p", 1.0, vec![b"truncated".to_vec()])).await;
    let ok = version(&farm, Spec::deployed("p", 0.5, vec![b"fine".to_vec()])).await;
    std::fs::remove_file(
        farm.fs
            .path_of(&BlobPlace::Hot.key(&sha256_hex(b"deleted"), Encoding::Identity)),
    )
    .unwrap();
    // Same size, other bytes: only hashing finds it.
    std::fs::write(
        farm.fs
            .path_of(&BlobPlace::Hot.key(&sha256_hex(b"flipped"), Encoding::Identity)),
        b"flopped",
    )
    .unwrap();
    std::fs::write(
        farm.fs
            .path_of(&BlobPlace::Hot.key(&sha256_hex(b"truncated"), Encoding::Identity)),
        b"trunc",
    )
    .unwrap();

    let needs_rebuild = || async {
        let rows: Vec<(String,)> = sqlx::query_as("select id from versions where needs_rebuild order by id")
            .fetch_all(&farm.db)
            .await
            .unwrap();
        rows.into_iter().map(|(id,)| id).collect::<Vec<_>>()
    };
    let dry = ran(maintain(&farm, "test", true).await.unwrap());
    assert_eq!(dry.blobs.verify.missing, [sha256_hex(b"deleted")]);
    assert_eq!(dry.blobs.verify.corrupt_count, 2, "{:?}", dry.blobs.verify);
    assert!(needs_rebuild().await.is_empty(), "a dry run marks nothing");

    let run = ran(maintain(&farm, "test", false).await.unwrap());
    let v = &run.blobs.verify;
    assert_eq!(v.missing, [sha256_hex(b"deleted")]);
    let mut corrupt = v.corrupt.clone();
    corrupt.sort();
    let mut expected = vec![sha256_hex(b"flipped"), sha256_hex(b"truncated")];
    expected.sort();
    assert_eq!(corrupt, expected);
    assert_eq!(
        v.sampled, 2,
        "every blob present and of the right size was hashed: {v:?}"
    );
    let mut broken = vec![a.to_string(), b.to_string(), c.to_string()];
    broken.sort();
    assert_eq!(needs_rebuild().await, broken);
    assert!(!broken.contains(&ok.to_string()));
    // The corrupt bytes are kept aside for a look, and never served.
    assert!(farm
        .fs
        .path_of(&format!(
            "corrupt/{}",
            BlobPlace::Hot.key(&sha256_hex(b"flipped"), Encoding::Identity)
        ))
        .exists());
    assert!(farm
        .artifacts
        .get_blob(&sha256_hex(b"flipped"), Encoding::Identity)
        .await
        .is_err());
}

/// Compressed blobs (`<hash>.gz`): a flipped byte is found by hashing the inflated bytes, a
/// truncated one by its size; a valid stream of another size (the same content compressed by
/// another release's zlib) is read and hashed, and kept.
#[tokio::test]
async fn verification_judges_compressed_blobs_by_their_content() {
    let farm = farm().await;
    let text = |tag: &str| format!("export const {tag} = 1;\n").repeat(200).into_bytes();
    let (flipped, truncated, other_zlib, fine) =
        (text("flipped"), text("truncated"), text("other"), text("fine"));
    let a = version(
        &farm,
        Spec::deployed("p", 2.0, vec![flipped.clone(), fine.clone()]),
    )
    .await;
    let b = version(&farm, Spec::deployed("p", 1.5, vec![truncated.clone()])).await;
    let ok = version(
        &farm,
        Spec::deployed("p", 1.0, vec![other_zlib.clone(), fine.clone()]),
    )
    .await;
    let path = |body: &[u8]| {
        farm.fs
            .path_of(&BlobPlace::Hot.key(&sha256_hex(body), Encoding::Gzip))
    };
    for body in [&flipped, &truncated, &other_zlib, &fine] {
        assert!(path(body).exists(), "stored compressed");
    }
    let mut bytes = std::fs::read(path(&flipped)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(path(&flipped), bytes).unwrap();
    let bytes = std::fs::read(path(&truncated)).unwrap();
    std::fs::write(path(&truncated), &bytes[..bytes.len() - 9]).unwrap();
    let mut best = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut best, &other_zlib).unwrap();
    let best = best.finish().unwrap();
    let mut fast = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut fast, &other_zlib).unwrap();
    let fast = fast.finish().unwrap();
    let stored = std::fs::read(path(&other_zlib)).unwrap();
    let other = if best.len() != stored.len() { best } else { fast };
    assert_ne!(other.len(), stored.len(), "a stream of another size");
    std::fs::write(path(&other_zlib), other).unwrap();

    let run = ran(maintain(&farm, "test", false).await.unwrap());
    let v = &run.blobs.verify;
    let mut corrupt = v.corrupt.clone();
    corrupt.sort();
    let mut expected = vec![
        format!("{}.gz", sha256_hex(&flipped)),
        format!("{}.gz", sha256_hex(&truncated)),
    ];
    expected.sort();
    assert_eq!(corrupt, expected, "{v:?}");
    assert_eq!(v.missing_count, 0, "{v:?}");
    let rows: Vec<(String,)> = sqlx::query_as("select id from versions where needs_rebuild order by id")
        .fetch_all(&farm.db)
        .await
        .unwrap();
    let mut broken = vec![a.to_string(), b.to_string()];
    broken.sort();
    assert_eq!(rows.into_iter().map(|(id,)| id).collect::<Vec<_>>(), broken);
    assert!(path(&other_zlib).exists() && path(&fine).exists());
    readable(&farm, &format!("manifests/{ok}/output.json"))
        .await
        .expect("the other stream still reads whole");
}

/// Builds record versions as fast as they can while maintenance runs again and again with a
/// grace period of one second, and versions are deleted as they go: builds keep reusing blobs
/// that no version references any more (the race a grace period alone cannot close: the build
/// finds the blob in place, the GC moves it, the build records a version naming it). Every
/// version stays whole.
#[tokio::test]
async fn gc_running_while_builds_upload_loses_nothing() {
    let settings = MaintenanceSettings {
        gc_grace: Duration::from_secs(1),
        ..MaintenanceSettings::default()
    };
    let farm = std::sync::Arc::new(farm_with(settings).await);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let builds = {
        let (farm, stop) = (farm.clone(), stop.clone());
        tokio::spawn(async move {
            let mut made = std::collections::VecDeque::new();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // 20 blobs shared round-robin, each version with one of its own too.
                let files = vec![
                    format!("reused {}", n % 20).into_bytes(),
                    format!("new {n}").into_bytes(),
                ];
                made.push_back(version(&farm, Spec::deployed("p", 0.0, files)).await);
                // Only the newest 10 versions live: the others' blobs become garbage.
                if made.len() > 10 {
                    let old = made.pop_front().unwrap();
                    sqlx::query("delete from versions where id = $1")
                        .bind(old.to_string())
                        .execute(&farm.db)
                        .await
                        .unwrap();
                }
                n += 1;
            }
            n
        })
    };
    let (mut runs, mut trashed, mut restored) = (0, 0, 0);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let run = ran(maintain(&farm, "test", false).await.unwrap());
        (runs, trashed, restored) = (
            runs + 1,
            trashed + run.blobs.trashed,
            restored + run.blobs.restored,
        );
        all_readable(&farm).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let versions = builds.await.unwrap();
    eprintln!("{versions} versions, {runs} runs, {trashed} blobs trashed, {restored} restored by the runs");
    assert!(
        versions > 50 && runs > 3 && trashed > 20,
        "{versions} versions, {runs} runs, {trashed} trashed"
    );
    all_readable(&farm).await;
    let last = ran(maintain(&farm, "test", false).await.unwrap());
    assert_eq!(
        (last.blobs.verify.missing_count, last.blobs.verify.corrupt_count),
        (0, 0),
        "{:?}",
        last.blobs.verify
    );
    all_readable(&farm).await;
}

/// The real binary, killed (SIGKILL) in the middle of a large run: every version left still
/// reads whole, and the next run (once the dead run's lock has expired) finishes the job.
#[tokio::test]
async fn a_run_killed_half_way_leaves_everything_readable_and_the_next_run_finishes() {
    let settings = MaintenanceSettings::default();
    let farm = farm_with(settings).await;
    // 1,500 versions over 3 projects; with 200 kept per project, 900 expire, and their blobs
    // (made old) go to the trash.
    for n in 0..1500u32 {
        let project = ["a", "b", "c"][(n % 3) as usize];
        let days_old = f64::from(1500 - n) / 100.0;
        version(
            &farm,
            Spec::deployed(
                project,
                days_old,
                vec![format!("out {n}").into_bytes(), format!("more {n}").into_bytes()],
            ),
        )
        .await;
    }
    age_all(farm.dir.path(), 7 * HOUR);
    let metrics = farm.dir.path().join("kiln-maintenance.prom");
    let run_binary = || {
        // Under the UMask kiln-maintain.service sets (027): the metrics file stays readable to
        // node_exporter all the same (`exec` keeps the pid the test kills).
        std::process::Command::new("sh")
            .args(["-c", "umask 027 && exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_kiln-ops"))
            .args(["maintain", "--json", "--metrics-file"])
            .arg(&metrics)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KILN_DATABASE_URL", &farm.db_url)
            .env("KILN_REDIS_URL", kiln_testkit::env::test::redis_url())
            .env("KILN_REDIS_PREFIX", &farm.redis_prefix)
            .env(
                "KILN_ARTIFACTS",
                format!("file://{}", farm.dir.path().join("artifacts").display()),
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Kill it once it has started moving blobs to the trash.
    let mut child = run_binary();
    let trash = farm.dir.path().join("artifacts/trash");
    let started = std::time::Instant::now();
    while !trash.exists() && started.elapsed() < Duration::from_secs(60) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(5));
    child.kill().unwrap();
    child.wait().unwrap();
    let left = ids(&farm).await.len();
    assert_eq!(left, 600, "retention ran before the GC");
    all_readable(&farm).await;
    let trashed_at_kill = walk_count(&trash);
    assert!(
        trashed_at_kill > 0 && trashed_at_kill < 1800,
        "killed half-way: {trashed_at_kill} blobs in the trash"
    );

    // The dead run's lock would expire within a minute; say it has.
    let mut redis = redis::Client::open(kiln_testkit::env::test::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{}:maintenance-lock", farm.redis_prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    let out = run_binary().wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // A move the kill cut between stamping its blob and renaming it leaves the blob in place
    // and fresh (by design: never a moved blob that looks old), so it waits out a grace period.
    let in_grace = report["blobs"]["inGrace"].as_u64().unwrap();
    assert!(in_grace <= 16, "at most the moves in flight: {report}");
    assert_eq!(
        report["blobs"]["trashed"].as_u64().unwrap() + trashed_at_kill as u64 + in_grace,
        1800,
        "{report}"
    );
    assert_eq!(walk_count(&trash) as u64 + in_grace, 1800);
    // The same figures for Prometheus (node_exporter's textfile collector).
    let text = std::fs::read_to_string(&metrics).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&metrics).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644, "{mode:o}");
    let trashed_line = format!("kiln_maintenance_blobs_trashed {}", report["blobs"]["trashed"]);
    assert!(text.lines().any(|l| l == trashed_line), "{text}");
    assert!(text.contains("# TYPE kiln_maintenance_blobs_missing gauge\nkiln_maintenance_blobs_missing 0\n"));
    assert_eq!(report["blobs"]["verify"]["missingCount"], 0);
    all_readable(&farm).await;
    let again = ran(maintain(&farm, "test", false).await.unwrap());
    assert_eq!(
        (again.blobs.trashed, again.blobs.in_grace, again.retention.expired),
        (0, in_grace, 0)
    );
}

fn walk_count(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap())
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                walk_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}
