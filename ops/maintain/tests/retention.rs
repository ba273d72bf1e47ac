//! Retention on real PostgreSQL and Redis, with a filesystem store: what goes, what stays.

mod common;

use common::{all_readable, farm, ids, ran, version, Spec};
use kiln_ops::maintain;
use kiln_shared::store::{BlobPlace, Encoding};

/// A project of 250 versions, one made a day (the newest today): the newest 200 stay (the older
/// of them archived past 90 days), the 50 oldest go, except the pinned ones and the target of a
/// recent rollback. A dry run first changes nothing.
#[tokio::test]
async fn a_project_of_250_versions_keeps_its_newest_200_and_every_protected_one() {
    let farm = farm().await;
    let mut made = Vec::new();
    for n in 0..250u32 {
        let days_old = f64::from(249 - n);
        made.push(
            version(
                &farm,
                Spec::deployed("big", days_old, vec![format!("v{n}").into_bytes()]),
            )
            .await,
        );
    }
    // made[0] is 249 days old, made[249] today.
    let (pinned_a, pinned_b, rolled_back_to) = (made[3], made[40], made[10]);
    for id in [pinned_a, pinned_b] {
        sqlx::query("update versions set pinned = true where id = $1")
            .bind(id.to_string())
            .execute(&farm.db)
            .await
            .unwrap();
    }
    // A rollback to made[10] an hour ago: it is the project's latest now.
    let rollback = version(
        &farm,
        Spec {
            rollback_of: Some(rolled_back_to),
            ..Spec::deployed("big", 0.04, vec![])
        },
    )
    .await;
    // Another project: one version two years old, one 100 days old, one new.
    let ancient = version(&farm, Spec::deployed("small", 730.0, vec![b"ancient".to_vec()])).await;
    let aged = version(&farm, Spec::deployed("small", 100.0, vec![b"aged".to_vec()])).await;
    let fresh = version(&farm, Spec::deployed("small", 1.0, vec![b"fresh".to_vec()])).await;
    let before = ids(&farm).await;

    let dry = ran(maintain(&farm, "test", true).await.unwrap());
    // 251 rows in "big": its newest 200 (the rollback and made[51..250]) stay; of made[0..51]
    // pinned_a, pinned_b and the rollback's target stay. "small": the two-year-old goes.
    assert_eq!(dry.retention.expired, 51 - 3 + 1, "{:?}", dry.retention);
    // Kept, older than 90 days, not protected: made[51..=159] in "big", `aged` in "small".
    assert_eq!(dry.retention.to_archive, 109 + 1, "{:?}", dry.retention);
    assert_eq!((dry.retention.deleted, dry.retention.archived), (0, 0));
    assert_eq!(ids(&farm).await, before, "a dry run deletes nothing");
    let archived: i64 = sqlx::query_scalar("select count(*) from versions where archived_at is not null")
        .fetch_one(&farm.db)
        .await
        .unwrap();
    assert_eq!(archived, 0, "a dry run archives nothing");

    let run = ran(maintain(&farm, "test", false).await.unwrap());
    assert_eq!(run.retention.deleted, 49);
    assert_eq!(run.retention.archived, 110);
    let left = ids(&farm).await;
    assert_eq!(left.len(), before.len() - 49);
    for kept in [pinned_a, pinned_b, rolled_back_to, rollback, aged, fresh] {
        assert!(left.contains(&kept), "{kept} was deleted");
    }
    assert!(!left.contains(&ancient));
    for gone in made[..51]
        .iter()
        .filter(|v| ![pinned_a, pinned_b, rolled_back_to].contains(v))
    {
        assert!(!left.contains(gone), "{gone} should have gone");
    }
    for kept in &made[51..] {
        assert!(left.contains(kept));
    }
    let is_archived = |id: kiln_shared::domain::VersionId| {
        let db = farm.db.clone();
        async move {
            sqlx::query_scalar::<_, bool>("select archived_at is not null from versions where id = $1")
                .bind(id.to_string())
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    assert!(is_archived(made[51]).await && is_archived(made[159]).await && is_archived(aged).await);
    assert!(!is_archived(made[160]).await, "89 days old: not archived");
    for protected in [pinned_a, rolled_back_to, fresh] {
        assert!(!is_archived(protected).await, "{protected} is protected");
    }

    // The blob GC of the same run: the deleted versions' blobs went to the trash, the
    // archived ones' to archive/, and every version left still reads whole.
    assert_eq!(
        run.blobs.trashed, 0,
        "younger than the grace period: {:?}",
        run.blobs
    );
    assert_eq!(run.blobs.archived, 110);
    let archived_blob = farm
        .artifacts
        .get_manifest(&format!("manifests/{}/output.json", made[51]))
        .await
        .unwrap()
        .unwrap();
    let hash = &archived_blob.files.values().next().unwrap().hash;
    assert!(farm
        .fs
        .path_of(&BlobPlace::Archive.key(hash, Encoding::Identity))
        .exists());
    assert!(!farm
        .fs
        .path_of(&BlobPlace::Hot.key(hash, Encoding::Identity))
        .exists());
    all_readable(&farm).await;

    // Again: nothing left to do.
    let again = ran(maintain(&farm, "test", false).await.unwrap());
    assert_eq!((again.retention.expired, again.retention.to_archive), (0, 0));
    assert_eq!((again.blobs.archived, again.blobs.unarchived), (0, 0));
}

/// Rolling back to an archived version brings its blobs back from archive/ at the next run
/// (and they are served meanwhile).
#[tokio::test]
async fn a_rollback_to_an_archived_version_brings_its_blobs_back() {
    let farm = farm().await;
    let old = version(&farm, Spec::deployed("p", 120.0, vec![b"old output".to_vec()])).await;
    version(&farm, Spec::deployed("p", 1.0, vec![b"new output".to_vec()])).await;
    let run = ran(maintain(&farm, "test", false).await.unwrap());
    assert_eq!((run.retention.archived, run.blobs.archived), (1, 1));
    let rollback = version(
        &farm,
        Spec {
            rollback_of: Some(old),
            ..Spec::deployed("p", 0.0, vec![])
        },
    )
    .await;
    all_readable(&farm).await;
    let run = ran(maintain(&farm, "test", false).await.unwrap());
    assert_eq!(run.blobs.unarchived, 1, "{:?}", run.blobs);
    let hash = kiln_shared::store::sha256_hex(b"old output");
    assert!(farm
        .fs
        .path_of(&BlobPlace::Hot.key(&hash, Encoding::Identity))
        .exists());
    assert!(ids(&farm).await.contains(&rollback));
}
