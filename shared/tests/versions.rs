//! Version rows on a real PostgreSQL (a database per test): batched admission statements and
//! where a version's source tree is read from.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kiln_shared::db::batch::Batcher;
use kiln_shared::db::versions::{self, Deployed, Metrics, NewVersion};
use kiln_shared::db::PgPool;
use kiln_shared::domain::{ProjectId, UserId, VersionId};
use kiln_shared::store::{Artifacts, FsStore, Manifest};

async fn database() -> PgPool {
    let admin_url = std::env::var("KILN_TEST_DATABASE_URL").expect("run the tests through ops/test.sh");
    let url = kiln_shared::db::create_database(&admin_url, "kiln_test")
        .await
        .unwrap();
    let pool = PgPool::connect(&url).await.unwrap();
    kiln_shared::db::migrate(&pool).await.unwrap();
    pool
}

fn row(user: &str, project: &str, parent: Option<VersionId>) -> NewVersion {
    let mut sources = Manifest::default();
    sources.insert("index.html", "ab".repeat(32), 10);
    NewVersion {
        id: VersionId::new(),
        user_id: UserId::parse(user).unwrap(),
        project_id: ProjectId::parse(project).unwrap(),
        project_label: format!("{user}-{project}").to_ascii_lowercase().replace('_', "-"),
        prompt: Some("a site".into()),
        framework: None,
        parent_version_id: parent,
        generate: false,
        source_manifest: sources,
        metadata: None,
        retry_of: None,
        checks: None,
        settings: Default::default(),
        request_env: None,
        redeploy_of: None,
        only_if_first: false,
        force: false,
    }
}

/// Starts and deploys a queued row; `sources` is the tree the build changed, if it did.
async fn deploy(pool: &PgPool, id: VersionId, sources: Option<&Manifest>) {
    let started = versions::start(pool, id, "test-builder").await.unwrap().unwrap();
    let metrics = Metrics::default();
    versions::mark_deployed(
        pool,
        id,
        started.attempts,
        &Deployed {
            sources,
            output_manifest_key: &format!("manifests/{id}/output.json"),
            framework: None,
            node_version: None,
            pnpm_version: None,
            metadata: None,
            output_dir: Some("dist"),
            diagnostics: &[],
            diagnostics_total: 0,
            metrics: &metrics,
            build_key: None,
            reused_from: None,
        },
    )
    .await
    .unwrap()
    .unwrap();
}

#[tokio::test]
async fn concurrent_inserts_form_one_statement_and_a_bad_row_fails_only_its_caller() {
    let pool = database().await;
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let (p, seen) = (pool.clone(), sizes.clone());
    let batcher = Batcher::new("test", 64, 1, move |rows: Vec<NewVersion>| {
        let (p, seen) = (p.clone(), seen.clone());
        async move {
            seen.lock().unwrap().push(rows.len());
            versions::insert_queued(&p, &rows).await
        }
    });
    let mut rows: Vec<NewVersion> = (0..9).map(|i| row("u", &format!("p{i}"), None)).collect();
    // A parent that does not exist breaks the foreign key.
    rows.insert(4, row("u", "orphan", Some(VersionId::new())));
    let results = futures::future::join_all(rows.iter().map(|r| batcher.call(r.clone()))).await;

    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.is_err(), i == 4, "row {i}: {r:?}");
    }
    let sizes = sizes.lock().unwrap().clone();
    assert_eq!(
        sizes[0], 10,
        "the ten calls ran as one statement first: {sizes:?}"
    );
    assert_eq!(
        &sizes[1..],
        &[1; 10],
        "then one by one, after the batch failed: {sizes:?}"
    );
    let count: i64 = sqlx::query_scalar("select count(*) from versions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 9);
    for r in rows.iter().filter(|r| r.parent_version_id.is_none()) {
        let v = versions::get(&pool, r.id).await.unwrap().unwrap();
        assert_eq!(v.source_manifest.as_ref(), Some(&r.source_manifest));
    }
}

#[tokio::test]
async fn an_only_if_first_row_is_refused_when_its_project_has_a_deployed_version() {
    let pool = database().await;
    let a1 = row("u", "a", None);
    versions::insert_queued(&pool, std::slice::from_ref(&a1))
        .await
        .unwrap();
    let first = |mut r: NewVersion| {
        r.only_if_first = true;
        r
    };
    // Queued is not deployed: a second first build of "a" is still accepted.
    let a2 = first(row("u", "a", None));
    assert_eq!(
        versions::insert_queued(&pool, std::slice::from_ref(&a2))
            .await
            .unwrap(),
        vec![true]
    );
    deploy(&pool, a1.id, None).await;

    let (a3, b1, a4) = (
        first(row("u", "a", None)),
        first(row("u", "b", None)),
        row("u", "a", None),
    );
    let done = versions::insert_queued(&pool, &[a3.clone(), b1.clone(), a4.clone()])
        .await
        .unwrap();
    assert_eq!(
        done,
        vec![false, true, true],
        "only the guarded row of a deployed project is refused"
    );
    assert!(versions::get(&pool, a3.id).await.unwrap().is_none());
    assert!(versions::get(&pool, b1.id).await.unwrap().is_some());
    let events: i64 = sqlx::query_scalar("select count(*) from build_events where build_id = $1")
        .bind(a3.id.to_string())
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events, 0, "a refused row has no event either");
}

#[tokio::test]
async fn latest_deployed_each_answers_in_the_order_asked() {
    let pool = database().await;
    let (a1, a2, b1, c1) = (
        row("u", "a", None),
        row("u", "a", None),
        row("u", "b", None),
        row("u", "c", None),
    );
    versions::insert_queued(&pool, &[a1.clone(), b1.clone(), c1.clone()])
        .await
        .unwrap();
    deploy(&pool, a1.id, None).await;
    deploy(&pool, b1.id, None).await;
    versions::insert_queued(&pool, std::slice::from_ref(&a2))
        .await
        .unwrap();
    deploy(&pool, a2.id, None).await; // c1 stays queued: project c has no deployed version

    let ask = |p: &str| (UserId::parse("u").unwrap(), ProjectId::parse(p).unwrap());
    let found = versions::latest_deployed_each(&pool, &[ask("b"), ask("c"), ask("a"), ask("none"), ask("b")])
        .await
        .unwrap();
    let ids: Vec<Option<VersionId>> = found.iter().map(|v| v.as_ref().map(|v| v.id)).collect();
    assert_eq!(ids, vec![Some(b1.id), None, Some(a2.id), None, Some(b1.id)]);
    assert!(found[0].as_ref().unwrap().source_manifest.is_some());
}

#[tokio::test]
async fn sources_come_from_the_row_or_for_older_rows_from_the_store() {
    let pool = database().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Artifacts::new(Arc::new(FsStore::new(dir.path().to_path_buf())));

    // A row recorded before migration 0004: its tree is a manifest in the store.
    let hash = store
        .put_blob(Bytes::from_static(b"<h1>old</h1>"))
        .await
        .unwrap()
        .hash;
    let mut old_tree = Manifest::default();
    old_tree.insert("index.html", hash, 12);
    let old = VersionId::new();
    let key = format!("manifests/{old}/source.json");
    store.put_manifest(&key, &old_tree).await.unwrap();
    sqlx::query(
        "insert into versions (id, user_id, project_id, project_label, status, source_manifest_key)
         values ($1, 'u', 'old', 'u-old', 'queued', $2)",
    )
    .bind(old.to_string())
    .bind(&key)
    .execute(&pool)
    .await
    .unwrap();
    let v = versions::get(&pool, old).await.unwrap().unwrap();
    assert_eq!(v.source_manifest, None);
    assert_eq!(v.sources(&store).await.unwrap(), old_tree);

    // Its build adds a lockfile: the new tree goes to the row, which wins from then on.
    let mut new_tree = old_tree.clone();
    new_tree.insert("pnpm-lock.yaml", "cd".repeat(32), 3);
    deploy(&pool, old, Some(&new_tree)).await;
    let v = versions::get(&pool, old).await.unwrap().unwrap();
    assert_eq!(v.sources(&store).await.unwrap(), new_tree);

    // A lost manifest is an error, not an empty tree.
    let gone = VersionId::new();
    sqlx::query(
        "insert into versions (id, user_id, project_id, project_label, status, source_manifest_key)
         values ($1, 'u', 'gone', 'u-gone', 'queued', 'manifests/nowhere/source.json')",
    )
    .bind(gone.to_string())
    .execute(&pool)
    .await
    .unwrap();
    let v = versions::get(&pool, gone).await.unwrap().unwrap();
    assert!(v.sources(&store).await.is_err());

    // Lists carry no trees.
    let listed = versions::list(
        &pool,
        &versions::ListFilter {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|v| v.source_manifest.is_none()));
}

#[tokio::test]
async fn the_database_refuses_malformed_identifiers_itself() {
    let pool = database().await;
    let insert = |id: &str, user: &str, label: &str| {
        sqlx::query("insert into versions (id, user_id, project_id, project_label, status) values ($1, $2, 'p', $3, 'queued')")
            .bind(id.to_owned())
            .bind(user.to_owned())
            .bind(label.to_owned())
            .execute(&pool)
    };
    let good = VersionId::new().to_string();
    assert!(insert(&good, "u_1", "u-1-p").await.is_ok());
    for (id, user, label) in [
        (VersionId::new().to_string().to_uppercase(), "u", "u-p"),
        (format!("{}x", VersionId::new()), "u", "u-p"),
        (VersionId::new().to_string(), "", "u-p"),
        (VersionId::new().to_string(), "u/../x", "u-p"),
        (VersionId::new().to_string(), &"u".repeat(65), "u-p"),
        (VersionId::new().to_string(), "u", "U-P"),
        (VersionId::new().to_string(), "u", ""),
    ] {
        let err = insert(&id, user, label).await.expect_err("a malformed row");
        assert!(
            err.to_string().contains("check constraint"),
            "{id} {user} {label}: {err}"
        );
    }
}

#[tokio::test]
async fn a_build_gets_one_final_event_however_many_are_sent() {
    use kiln_shared::db::events;
    use kiln_shared::domain::EventType;
    let pool = database().await;
    let new = row("u_final", "p", None);
    let id = new.id;
    assert!(versions::insert_queued(&pool, &[new]).await.unwrap()[0]);
    deploy(&pool, id, None).await;
    let data = serde_json::json!({});
    let first = events::record(&pool, id, EventType::DeployCompleted, &data)
        .await
        .unwrap();
    assert!(first.is_some());
    // A second daemon settling the same build, and a late failure: neither is recorded.
    for kind in [EventType::DeployCompleted, EventType::BuildFailed] {
        let again = events::record(&pool, id, kind, &data).await.unwrap();
        assert!(again.is_none(), "{kind} after the final event");
    }
    let kinds: Vec<EventType> = events::after(&pool, id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [EventType::BuildQueued, EventType::DeployCompleted]);
}

/// Every status-changing function, run from every status, does what `versions::TRANSITIONS`
/// says: it moves a build from the statuses its line lists to its status, and leaves a build in
/// any other status as it was.
#[tokio::test]
async fn every_status_change_follows_the_transition_table() {
    use kiln_shared::domain::{BuildStatus, Step};
    let pool = database().await;
    let newer = row("u_table", "newer", None);
    assert!(
        versions::insert_queued(&pool, std::slice::from_ref(&newer))
            .await
            .unwrap()[0]
    );
    let driven = [
        "start",
        "take_over",
        "hand_back",
        "supersede",
        "cancel",
        "mark_deployed",
        "mark_failed",
        "fail_lost",
    ];
    let mut names: Vec<&str> = versions::TRANSITIONS.iter().map(|t| t.by).collect();
    names.sort_unstable();
    let mut expected_names = driven.to_vec();
    expected_names.sort_unstable();
    assert_eq!(names, expected_names, "one line a status-changing function");
    let metrics = Metrics::default();
    let mut n = 0;
    for t in versions::TRANSITIONS {
        for &from in BuildStatus::ALL {
            n += 1;
            let new = row("u_table", &format!("p{n}"), None);
            let id = new.id;
            assert!(versions::insert_queued(&pool, &[new]).await.unwrap()[0]);
            // The build's current attempt is 1; the columns a final status needs are set.
            sqlx::query(
                "update versions set status = $2, attempts = 1, error = 'set by the test',
                     failed_step = 'queue', output_manifest_key = 'manifests/test.json',
                     superseded_by = $3
                 where id = $1",
            )
            .bind(id.to_string())
            .bind(from.as_str())
            .bind(newer.id.to_string())
            .execute(&pool)
            .await
            .unwrap();
            match t.by {
                "start" => {
                    versions::start(&pool, id, "b").await.unwrap();
                }
                "take_over" => {
                    versions::take_over(&pool, id, "b", 1000).await.unwrap();
                }
                "hand_back" => {
                    versions::hand_back(&pool, id, 1).await.unwrap();
                }
                "supersede" => {
                    versions::supersede(&pool, id, newer.id).await.unwrap();
                }
                "cancel" => {
                    versions::cancel(&pool, id).await.unwrap();
                }
                "mark_deployed" => {
                    let deployed = Deployed {
                        sources: None,
                        output_manifest_key: "manifests/out.json",
                        framework: None,
                        node_version: None,
                        pnpm_version: None,
                        metadata: None,
                        output_dir: Some("dist"),
                        diagnostics: &[],
                        diagnostics_total: 0,
                        metrics: &metrics,
                        build_key: None,
                        reused_from: None,
                    };
                    versions::mark_deployed(&pool, id, 1, &deployed).await.unwrap();
                }
                "mark_failed" => {
                    let failed = versions::Failed::new(Step::Build, "command_failed", "boom");
                    versions::mark_failed(&pool, id, Some(1), &failed, &metrics)
                        .await
                        .unwrap();
                }
                "fail_lost" => {
                    versions::fail_lost(&pool, id, Step::Build).await.unwrap();
                }
                other => panic!("{other} is in the table but this test does not run it"),
            }
            let after = versions::get(&pool, id).await.unwrap().unwrap().status;
            let expected = if t.from.contains(&from) { t.to } else { from };
            assert_eq!(after, expected, "{} from {from}", t.by);
            assert!(
                after == from || versions::is_legal(from, after),
                "{} made an illegal change from {from} to {after}",
                t.by
            );
        }
    }
}

/// A cancel and the event that records it share a transaction: rolled back, neither is left;
/// committed, both are.
#[tokio::test]
async fn a_cancel_and_its_event_commit_together() {
    use kiln_shared::db::events;
    use kiln_shared::domain::{BuildStatus, EventType};
    let pool = database().await;
    let new = row("u_tx", "p", None);
    let id = new.id;
    assert!(versions::insert_queued(&pool, &[new]).await.unwrap()[0]);
    let data = serde_json::json!({});
    for commit in [false, true] {
        let mut tx = pool.begin().await.unwrap();
        let cancelled = versions::cancel(&mut *tx, id).await.unwrap();
        assert!(matches!(cancelled, Some(Ok(_))), "{cancelled:?}");
        let event = events::record(&mut *tx, id, EventType::BuildCancelled, &data)
            .await
            .unwrap();
        assert!(event.is_some());
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
        let status = versions::get(&pool, id).await.unwrap().unwrap().status;
        let last = events::latest(&pool, id).await.unwrap().unwrap().kind;
        match commit {
            false => assert_eq!((status, last), (BuildStatus::Queued, EventType::BuildQueued)),
            true => assert_eq!(
                (status, last),
                (BuildStatus::Cancelled, EventType::BuildCancelled)
            ),
        }
    }
}
