use super::*;
use serde_json::json;

fn key(lockfile: &str) -> DepKey {
    DepKey::of(&KeyInputs {
        lockfile: Some(lockfile),
        package_jsons: vec![("package.json".into(), json!({"dependencies": {"a": "1"}}))],
        node: Some("v24.0.0"),
        pnpm: Some("10.0.0"),
        ..KeyInputs::default()
    })
    .unwrap()
}

/// A project folder with an installed-looking `node_modules` of `bytes` bytes.
fn installed(dir: &Path, bytes: usize) {
    std::fs::create_dir_all(dir.join("node_modules/.pnpm/a@1/node_modules/a")).unwrap();
    std::fs::write(
        dir.join("node_modules/.pnpm/a@1/node_modules/a/index.js"),
        vec![b'x'; bytes],
    )
    .unwrap();
    std::os::unix::fs::symlink(".pnpm/a@1/node_modules/a", dir.join("node_modules/a")).unwrap();
}

#[tokio::test]
async fn a_kept_tree_is_found_by_its_key_restored_and_bounded() {
    let work = tempfile::tempdir().unwrap();
    let metrics = kiln_shared::metrics::Metrics::new("builder");
    let cache = DepCache::open(work.path(), 1000, None, metrics.clone())
        .await
        .unwrap();
    let project = work.path().join("p1");
    std::fs::create_dir_all(&project).unwrap();
    installed(&project, 400);

    let k1 = key("lock-1");
    assert!(matches!(
        cache.lookup("u", "p", &k1),
        Lookup::Miss { reason } if reason == "no tree of this project on this builder"
    ));
    let saved = cache
        .save("u", "p", &k1, &project, vec!["node_modules".into()])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(saved.copied.bytes, 400);
    // The build then writes into its own node_modules: the kept tree does not change.
    std::fs::write(project.join("node_modules/a/index.js"), "tampered").unwrap();

    let Lookup::Hit { tree } = cache.lookup("u", "p", &k1) else {
        panic!("a hit")
    };
    let next = work.path().join("p2");
    std::fs::create_dir_all(&next).unwrap();
    let restored = cache.restore(tree.clone(), &next, None).await.unwrap();
    assert_eq!(restored.copied.bytes, 400);
    assert_eq!(
        std::fs::read(next.join("node_modules/a/index.js")).unwrap(),
        vec![b'x'; 400]
    );
    // A restore where node_modules exists fails and leaves it alone.
    let err = cache.restore(tree, &next, None).await.unwrap_err();
    assert!(err.to_string().contains("already there"), "{err}");
    assert!(next.join("node_modules/a/index.js").exists());

    // Another project of the same key is another tree; another key of this project a miss
    // that says what changed.
    assert!(matches!(cache.lookup("u", "other", &k1), Lookup::Miss { .. }));
    assert!(matches!(
        cache.lookup("u", "p", &key("lock-2")),
        Lookup::Miss { reason } if reason == "changed: lockfile"
    ));
    let text = metrics.encode();
    let sample = |name: &str, labels: &[(&str, &str)]| kiln_shared::metrics::sample(&text, name, labels);
    assert_eq!(
        sample("kiln_dep_cache_lookups_total", &[("result", "hit")]),
        Some(1.0)
    );
    assert_eq!(
        sample("kiln_dep_cache_lookups_total", &[("result", "miss")]),
        Some(3.0)
    );
    assert_eq!(sample("kiln_dep_cache_bytes", &[]), Some(400.0));

    // A second project's tree past the bound evicts the least recently used.
    let other = work.path().join("p3");
    std::fs::create_dir_all(&other).unwrap();
    installed(&other, 700);
    cache
        .save("u", "q", &k1, &other, vec!["node_modules".into()])
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(cache.lookup("u", "p", &k1), Lookup::Miss { .. }));
    assert!(matches!(cache.lookup("u", "q", &k1), Lookup::Hit { .. }));
    // One alone past the bound is not kept.
    let big = work.path().join("p4");
    std::fs::create_dir_all(&big).unwrap();
    installed(&big, 2000);
    assert!(cache
        .save("u", "r", &k1, &big, vec!["node_modules".into()])
        .await
        .unwrap()
        .is_none());

    // A daemon started later finds what is on disk; the upkeep removes it.
    let again = DepCache::open(work.path(), 1000, None, metrics).await.unwrap();
    assert!(matches!(again.lookup("u", "q", &k1), Lookup::Hit { .. }));
    assert_eq!(trim(work.path(), UNUSED_FOR, false).unwrap(), 0);
    assert_eq!(trim(work.path(), UNUSED_FOR, true).unwrap(), 1);
    assert!(matches!(again.lookup("u", "q", &k1), Lookup::Miss { .. }));
}
