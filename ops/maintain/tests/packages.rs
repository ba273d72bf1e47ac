//! `kiln-ops maintain` and the fleet's package cache: a package no install used for
//! `KILN_PACKAGE_CACHE_DAYS` is forgotten and its tarball deleted; a recent one, and a tarball
//! a recent package still names, are kept; a tarball no row names is deleted after the grace
//! period.

use std::time::Duration;

use bytes::Bytes;
use kiln_ops::maintain;
use kiln_shared::config::MaintenanceSettings;
use kiln_shared::db::packages as index;
use kiln_shared::store::{Artifacts, ObjectStore};

mod common;

use common::{farm_with, ran};

/// Stores `body` as a cached tarball and records it for `name@version`, last used `days` ago.
async fn cached(farm: &kiln_ops::Farm, name: &str, version: &str, body: &'static [u8], days: i64) -> String {
    use sha2::Digest;
    let hex = hex::encode(sha2::Sha512::digest(body));
    farm.artifacts
        .objects()
        .put(
            &Artifacts::package_key(&hex),
            Bytes::from_static(body),
            "application/octet-stream",
        )
        .await
        .unwrap();
    index::record(&farm.db, name, version, &hex, body.len() as u64)
        .await
        .unwrap();
    sqlx::query("update package_cache set last_used_at = now() - make_interval(days => $3) where name = $1 and version = $2")
        .bind(name)
        .bind(version)
        .bind(days as i32)
        .execute(&farm.db)
        .await
        .unwrap();
    hex
}

#[tokio::test]
async fn packages_unused_for_the_period_are_collected_and_recent_ones_kept() {
    let farm = farm_with(MaintenanceSettings {
        package_cache_unused: Duration::from_secs(30 * 24 * 3600),
        gc_grace: Duration::from_secs(1),
        ..MaintenanceSettings::default()
    })
    .await;
    let old = cached(&farm, "left-pad", "1.0.0", b"an old tarball", 40).await;
    let recent = cached(&farm, "is-number", "7.0.0", b"a recent tarball", 2).await;
    // One tarball named by an old row and a recent one: kept for the recent one.
    let shared = cached(&farm, "a", "1.0.0", b"the same bytes", 45).await;
    assert_eq!(cached(&farm, "b", "1.0.0", b"the same bytes", 1).await, shared);
    // A tarball a daemon stored but never recorded.
    let orphan_body = b"stored, never recorded";
    let orphan = {
        use sha2::Digest;
        hex::encode(sha2::Sha512::digest(orphan_body))
    };
    farm.artifacts
        .objects()
        .put(
            &Artifacts::package_key(&orphan),
            Bytes::from_static(orphan_body),
            "application/octet-stream",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let dry = ran(maintain(&farm, "test", true).await.unwrap());
    assert_eq!((dry.packages.forgotten, dry.dry_run), (2, true), "{dry:?}");
    assert!(
        farm.fs.exists(&Artifacts::package_key(&old)).await.unwrap(),
        "a dry run deleted"
    );

    let run = ran(maintain(&farm, "test", false).await.unwrap());
    assert_eq!(run.packages.forgotten, 2, "{:?}", run.packages);
    // The old package's tarball and the orphan; not the shared one.
    assert_eq!(run.packages.deleted, 2, "{:?}", run.packages);
    let exists = |hex: &str| {
        let key = Artifacts::package_key(hex);
        let fs = farm.fs.clone();
        async move { fs.exists(&key).await.unwrap() }
    };
    assert!(!exists(&old).await, "the old package's tarball was kept");
    assert!(!exists(&orphan).await, "an unrecorded tarball was kept");
    assert!(exists(&recent).await, "a recent package's tarball was deleted");
    assert!(
        exists(&shared).await,
        "a tarball a recent package names was deleted"
    );
    assert!(index::lookup(&farm.db, "left-pad", "1.0.0")
        .await
        .unwrap()
        .is_none());
    assert!(index::lookup(&farm.db, "a", "1.0.0").await.unwrap().is_none());
    assert!(index::lookup(&farm.db, "is-number", "7.0.0")
        .await
        .unwrap()
        .is_some());
    assert!(index::lookup(&farm.db, "b", "1.0.0").await.unwrap().is_some());

    // Nothing left to do.
    let again = ran(maintain(&farm, "test", false).await.unwrap());
    assert_eq!((again.packages.forgotten, again.packages.deleted), (0, 0));
}
