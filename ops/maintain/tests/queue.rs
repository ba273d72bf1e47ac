//! The queue repairs of a maintenance run, on a real PostgreSQL and Redis: a queued build
//! whose stream entry was lost, a running build whose claim was lost, and project slots held
//! by builds that ended; what is live is left alone, and a dry run changes nothing.

mod common;

use std::time::Duration;

use common::{farm, ran, version, Spec, TestFarm};
use kiln_ops::maintain;
use kiln_shared::domain::{ProjectId, UserId, VersionId};
use kiln_shared::redis::{Admission, QuotaLimits};

fn ids(user: &str, project: &str) -> (UserId, ProjectId) {
    (UserId::parse(user).unwrap(), ProjectId::parse(project).unwrap())
}

/// A row of `project` (user `u1`) in `status`, made `minutes` ago; a running one's attempt
/// started then too.
async fn row(farm: &TestFarm, project: &str, status: &str, minutes: f64) -> VersionId {
    let id = version(
        farm,
        Spec {
            status,
            ..Spec::deployed(project, minutes / 1440.0, vec![])
        },
    )
    .await;
    if status == "running" {
        sqlx::query(
            "update versions set started_at = created_at, attempts = 1, builder_id = 'b-gone'
             where id = $1",
        )
        .bind(id.to_string())
        .execute(&farm.db)
        .await
        .unwrap();
    }
    id
}

/// Takes the project's slot for `id` and adds its stream entry, as admission does.
async fn admit(farm: &TestFarm, id: VersionId, project: &str) {
    let (user, project_id) = ids("u1", project);
    let admitted = farm
        .queue
        .admit(
            id,
            &user,
            &project_id,
            &format!("u1-{project}"),
            &QuotaLimits::NONE,
            false,
        )
        .await
        .unwrap();
    assert!(matches!(admitted, Admission::Queued { .. }), "{admitted:?}");
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(kiln_testkit::env::test::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Removes `id`'s stream entry, as a Redis that lost it would.
async fn lose_entry(farm: &TestFarm, id: VersionId) {
    let stream = format!("{}:builds", farm.redis_prefix);
    let mut conn = redis().await;
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let entry = reply
        .ids
        .iter()
        .find(|e| e.get::<String>("build_id").as_deref() == Some(id.to_string().as_str()))
        .expect("an entry");
    let _: i64 = redis::cmd("XDEL")
        .arg(&stream)
        .arg(&entry.id)
        .query_async(&mut conn)
        .await
        .unwrap();
}

async fn slot(farm: &TestFarm, project: &str) -> Option<String> {
    let (user, project) = ids("u1", project);
    farm.queue.inflight(&user, &project).await.unwrap()
}

#[tokio::test]
async fn lost_entries_lost_claims_and_stale_slots_are_repaired_and_live_builds_left_alone() {
    let farm = farm().await;

    // A queued build whose entry was lost (and its slot with it: Redis lost both).
    let lost_entry = row(&farm, "p-queued", "queued", 5.0).await;
    // A running build whose entry (its claim) was lost; its slot is still held.
    let lost_claim = row(&farm, "p-running", "running", 10.0).await;
    admit(&farm, lost_claim, "p-running").await;
    lose_entry(&farm, lost_claim).await;
    // A deployed build whose daemon died after recording it and acknowledging its entry,
    // before releasing the slot.
    let ended = row(&farm, "p-ended", "deployed", 10.0).await;
    admit(&farm, ended, "p-ended").await;
    lose_entry(&farm, ended).await;
    // A slot held by a build that never got a row, long ago.
    let (user, _) = ids("u1", "p-ghost");
    let ghost = VersionId::parse(
        &ulid::Ulid::from_parts(
            (chrono::Utc::now() - chrono::Duration::minutes(5)).timestamp_millis() as u64,
            7,
        )
        .to_string(),
    )
    .unwrap();
    {
        let mut conn = redis().await;
        let _: () = redis::cmd("SET")
            .arg(format!("{}:inflight:u1:p-ghost", farm.redis_prefix))
            .arg(ghost.to_string())
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    // Live: a long build with its entry, a fresh queued build (its entry may be on its way),
    // a rollback's short hold.
    let long_running = row(&farm, "p-long", "running", 30.0).await;
    admit(&farm, long_running, "p-long").await;
    let fresh = row(&farm, "p-fresh", "queued", 0.2).await;
    let (_, rollback_project) = ids("u1", "p-rollback");
    assert_eq!(
        farm.queue
            .hold("rollback-1", &user, &rollback_project, Duration::from_secs(60))
            .await
            .unwrap(),
        None
    );

    let dry = ran(maintain(&farm, "test", true).await.unwrap());
    assert_eq!(dry.queue.republished, [lost_entry]);
    assert_eq!(dry.queue.taken_over, [lost_claim]);
    let mut released = dry.queue.released.clone();
    released.sort();
    let mut expected = vec![ended.to_string(), ghost.to_string()];
    expected.sort();
    assert_eq!(released, expected);
    let in_stream = farm.queue.builds_in_stream().await.unwrap();
    assert_eq!(in_stream.len(), 1, "a dry run adds no entry: {in_stream:?}");
    assert_eq!(
        slot(&farm, "p-ended").await,
        Some(ended.to_string()),
        "nor releases a slot"
    );

    let run = ran(maintain(&farm, "test", false).await.unwrap());
    assert_eq!(run.queue, dry.queue, "the run does what the dry run said");
    let in_stream = farm.queue.builds_in_stream().await.unwrap();
    for id in [lost_entry, lost_claim, long_running] {
        assert!(in_stream.contains(&id.to_string()), "{id} has an entry");
    }
    assert!(!in_stream.contains(&fresh.to_string()));
    assert_eq!(slot(&farm, "p-queued").await, Some(lost_entry.to_string()));
    assert_eq!(slot(&farm, "p-running").await, Some(lost_claim.to_string()));
    assert_eq!(slot(&farm, "p-long").await, Some(long_running.to_string()));
    assert_eq!(slot(&farm, "p-ended").await, None);
    assert_eq!(slot(&farm, "p-ghost").await, None);
    assert_eq!(slot(&farm, "p-rollback").await.as_deref(), Some("rollback-1"));

    // What a daemon reads: the lost claim comes back as a take-over (a new attempt, counted
    // as lost), the lost entry as a new build.
    farm.queue.ensure_group().await.unwrap();
    let mut reader = farm.queue.reader(Duration::from_millis(50));
    let mut read = Vec::new();
    while let Some(job) = reader.read("daemon-1").await.unwrap() {
        read.push((job.build_id, job.reclaimed));
    }
    read.sort();
    let mut expected = vec![(lost_entry, false), (lost_claim, true), (long_running, false)];
    expected.sort();
    assert_eq!(read, expected);

    // Repaired once: the next run has nothing to do.
    let again = ran(maintain(&farm, "test", false).await.unwrap());
    assert!(again.queue.is_empty(), "{:?}", again.queue);
}
