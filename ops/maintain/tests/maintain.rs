//! `kiln-ops maintain` on a real PostgreSQL and Redis (a database and a key prefix per test).

use kiln_ops::{maintain, Farm, Outcome};
use kiln_shared::db::versions::{self, Deployed, Metrics, NewVersion};
use kiln_shared::domain::{ProjectId, UserId, VersionId};
use kiln_shared::redis::LatestPointer;
use kiln_shared::store::Manifest;

mod common;

use common::{farm, ran};

/// A deployed version of `user/project`.
async fn deployed(farm: &Farm, user: &str, project: &str) -> VersionId {
    let mut sources = Manifest::default();
    sources.insert("index.html", "ab".repeat(32), 10);
    let row = NewVersion {
        id: VersionId::new(),
        user_id: UserId::parse(user).unwrap(),
        project_id: ProjectId::parse(project).unwrap(),
        project_label: format!("{user}-{project}").to_ascii_lowercase().replace('_', "-"),
        prompt: None,
        framework: None,
        parent_version_id: None,
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
    };
    let id = row.id;
    assert!(versions::insert_queued(&farm.db, &[row]).await.unwrap()[0]);
    let started = versions::start(&farm.db, id, "test").await.unwrap().unwrap();
    let metrics = Metrics::default();
    let deployed = Deployed {
        sources: None,
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
    };
    versions::mark_deployed(&farm.db, id, started.attempts, &deployed)
        .await
        .unwrap()
        .unwrap();
    id
}

async fn pointer_of(farm: &Farm, user: &str, project: &str) -> Option<VersionId> {
    farm.queue
        .latest(&UserId::parse(user).unwrap(), &ProjectId::parse(project).unwrap())
        .await
        .unwrap()
        .map(|p| p.latest_version_id)
}

async fn point(farm: &Farm, user: &str, project: &str, id: VersionId) {
    let pointer = LatestPointer {
        latest_version_id: id,
        preview_url: farm.urls.version_url(id),
        timestamp: chrono::Utc::now(),
    };
    farm.queue
        .set_latest(
            &UserId::parse(user).unwrap(),
            &ProjectId::parse(project).unwrap(),
            &pointer,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_and_missing_pointers_are_repaired_from_postgres_and_a_dry_run_changes_nothing() {
    let farm = farm().await;
    let right = deployed(&farm, "u1", "right").await;
    let old = deployed(&farm, "u1", "wrong").await;
    let new = deployed(&farm, "u1", "wrong").await;
    let lost = deployed(&farm, "u2", "lost").await;
    point(&farm, "u1", "right", right).await;
    point(&farm, "u1", "wrong", old).await;

    let dry = ran(maintain(&farm, "test", true).await.unwrap());
    assert!(dry.dry_run);
    assert_eq!(dry.pointers.checked, 3);
    assert_eq!(dry.pointers.wrong, ["u1/wrong"]);
    assert_eq!(dry.pointers.missing, ["u2/lost"]);
    assert_eq!(dry.pointers.repaired, 0);
    assert_eq!(
        pointer_of(&farm, "u1", "wrong").await,
        Some(old),
        "a dry run changes nothing"
    );
    assert_eq!(pointer_of(&farm, "u2", "lost").await, None);

    let real = ran(maintain(&farm, "test", false).await.unwrap());
    assert_eq!(real.pointers.repaired, 2);
    assert!(real.fence > dry.fence, "each run has a greater fencing number");
    assert_eq!(pointer_of(&farm, "u1", "right").await, Some(right));
    assert_eq!(pointer_of(&farm, "u1", "wrong").await, Some(new));
    assert_eq!(pointer_of(&farm, "u2", "lost").await, Some(lost));

    // Run again: nothing left to do.
    let again = ran(maintain(&farm, "test", false).await.unwrap());
    assert_eq!(again.pointers.checked, 3);
    assert_eq!(
        (
            again.pointers.missing.len(),
            again.pointers.wrong.len(),
            again.pointers.repaired
        ),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn a_pointer_that_changes_during_the_repair_is_left_to_whoever_changed_it() {
    let farm = farm().await;
    let first = deployed(&farm, "u1", "p").await;
    let user = UserId::parse("u1").unwrap();
    let project = ProjectId::parse("p").unwrap();
    // What the run read: no pointer. Meanwhile a deploy sets one.
    point(&farm, "u1", "p", first).await;
    let pointer = LatestPointer {
        latest_version_id: first,
        preview_url: String::new(),
        timestamp: chrono::Utc::now(),
    };
    assert!(!farm
        .queue
        .replace_latest(&user, &project, None, &pointer)
        .await
        .unwrap());
    assert_eq!(pointer_of(&farm, "u1", "p").await, Some(first));
}

#[tokio::test]
async fn one_run_at_a_time_the_other_says_who_holds_the_lock() {
    let farm = farm().await;
    let held = farm
        .queue
        .take_maintenance_lock("host-a:123:run", kiln_ops::LOCK_TTL)
        .await
        .unwrap()
        .unwrap();
    match maintain(&farm, "host-b", false).await.unwrap() {
        Outcome::Busy {
            holder,
            expires_in_ms,
        } => {
            assert_eq!(holder, "host-a:123:run");
            assert!(expires_in_ms > 50_000, "{expires_in_ms}");
        }
        Outcome::Ran(r) => panic!("two runs at once: {r:?}"),
    }
    assert!(farm.queue.release_maintenance_lock(&held).await.unwrap());
    ran(maintain(&farm, "host-b", false).await.unwrap());
}

#[test]
fn the_alert_rules_name_only_maintenance_gauges_that_exist() {
    let rules = include_str!("../../../deploy/prometheus/kiln-alerts.yml");
    let text = kiln_ops::Report::default().prometheus(chrono::Utc::now());
    let mut names: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("kiln_maintenance_"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 3, "{names:?}");
    for name in names {
        assert!(
            text.contains(&format!("# TYPE {name} gauge\n")),
            "deploy/prometheus/kiln-alerts.yml uses {name}, which kiln-ops maintain does not write"
        );
    }
}
