//! `kiln-builder maintain` on a real pnpm store: it waits for the builds using the store (and
//! stops new claims meanwhile), removes crashed builds' workspaces, prunes and bounds the store.

use std::path::Path;
use std::time::Duration;

use kiln_builder::upkeep::{paused, StoreUse, Upkeep, UpkeepError};

/// Installs is-number from the registry into a project outside the work folder, with `store`.
fn install_into(store: &Path, project: &Path) {
    std::fs::create_dir_all(project).unwrap();
    std::fs::write(
        project.join("package.json"),
        r#"{"name":"p","version":"1.0.0","dependencies":{"is-number":"7.0.0"}}"#,
    )
    .unwrap();
    let out = std::process::Command::new("pnpm")
        .args(["install", "--store-dir"])
        .arg(store)
        .current_dir(project)
        .env("CI", "true")
        .output()
        .expect("pnpm on PATH (ops/test.sh installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Keeps a warm dependency tree of project `u/p` in `work_dir`, as a build would.
fn keep_a_tree(work_dir: &Path) {
    use kiln_builder::deps::{DepCache, DepKey, KeyInputs, Lookup};
    let project = work_dir.join("tree-source");
    std::fs::create_dir_all(project.join("node_modules/a")).unwrap();
    std::fs::write(project.join("node_modules/a/index.js"), "1").unwrap();
    let key = DepKey::of(&KeyInputs {
        lockfile: Some("lock"),
        ..KeyInputs::default()
    })
    .unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let metrics = kiln_shared::metrics::Metrics::new("builder");
        let cache = DepCache::open(work_dir, 1 << 30, None, metrics).await.unwrap();
        cache
            .save("u", "p", &key, &project, vec!["node_modules".into()])
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(cache.lookup("u", "p", &key), Lookup::Hit { .. }));
    });
    std::fs::remove_dir_all(project).unwrap();
}

fn upkeep(dir: &Path, store_max: u64, wait: Duration) -> Upkeep {
    Upkeep {
        work_dir: dir.join("work"),
        pnpm_store: dir.join("work/pnpm-store"),
        store_max,
        wait,
        // The store here is root's (the test installs into it as root).
        store_user: None,
    }
}

#[test]
fn upkeep_removes_crashed_workspaces_and_prunes_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let u = upkeep(dir.path(), 1 << 40, Duration::from_secs(5));
    install_into(&u.pnpm_store, &dir.path().join("gone-project"));
    // The project is gone: its packages are garbage in the store.
    std::fs::remove_dir_all(dir.path().join("gone-project")).unwrap();
    let crashed = u.work_dir.join("01m83gjep9ff5kag96716ayek1-0123456789abcdef0123");
    std::fs::create_dir_all(crashed.join("project/node_modules")).unwrap();
    std::fs::write(crashed.join("project/big.js"), vec![b'x'; 100_000]).unwrap();
    let other = u.work_dir.join("not-a-workspace");
    std::fs::create_dir_all(&other).unwrap();
    keep_a_tree(&u.work_dir);

    let r = u.run().unwrap();
    assert_eq!(r.dep_trees_removed, 0, "a tree used today stays");
    assert_eq!(r.workspaces_removed, 1);
    assert!(r.workspace_bytes_freed >= 100_000, "{r:?}");
    assert!(!crashed.exists());
    assert!(other.exists(), "only workspaces are removed");
    assert!(r.pruned, "{r:?}");
    assert!(!r.emptied);
    assert!(r.store_bytes_before > 0);
    assert!(
        r.store_bytes_after < r.store_bytes_before,
        "the prune dropped the unreferenced package: {r:?}"
    );
}

#[test]
fn a_store_over_its_bound_after_the_prune_is_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let u = upkeep(dir.path(), 1, Duration::from_secs(5));
    // Still referenced (the project stays), so the prune keeps it; the bound does not.
    install_into(&u.pnpm_store, &dir.path().join("live-project"));
    keep_a_tree(&u.work_dir);
    let r = u.run().unwrap();
    assert!(r.emptied, "{r:?}");
    assert_eq!(r.dep_trees_removed, 1, "the trees go with the store: {r:?}");
    assert_eq!(r.store_bytes_after, 0);
    assert!(u.pnpm_store.is_dir(), "the store folder itself stays");
}

#[tokio::test(flavor = "multi_thread")]
async fn upkeep_waits_for_the_builds_using_the_store_and_stops_new_claims_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    assert!(!paused(&work));

    // A build holds the store: a run that may wait 1 s gives up, and says why.
    let build = StoreUse::acquire(&work).await.unwrap();
    let u = upkeep(dir.path(), 1 << 40, Duration::from_secs(1));
    let busy = tokio::task::spawn_blocking(move || u.run()).await.unwrap();
    assert!(matches!(busy, Err(UpkeepError::Busy(_))), "{busy:?}");
    assert!(!paused(&work), "a run that gave up no longer pauses the daemons");

    // A patient run: while it waits, workers claim nothing; once the build ends, it runs.
    let u = upkeep(dir.path(), 1 << 40, Duration::from_secs(30));
    let run = tokio::task::spawn_blocking(move || u.run());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(paused(&work), "the run pauses new claims while it waits");
    assert!(!run.is_finished(), "it waits for the build");
    drop(build);
    let report = run.await.unwrap().unwrap();
    assert!(report.waited_ms >= 400, "{report:?}");
    assert!(!paused(&work), "claims resume after the run");

    // A build that starts while a run works waits for it.
    std::fs::create_dir_all(&work).unwrap();
    let held = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(work.join(".kiln-store.lock"))
        .unwrap();
    held.lock().unwrap();
    let waiting = tokio::spawn({
        let work = work.clone();
        async move { StoreUse::acquire(&work).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the build waits while the store is held");
    drop(held);
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the build goes on once the store is free")
        .unwrap()
        .unwrap();
}
