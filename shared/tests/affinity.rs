//! Affinity on a real Redis (a key prefix per test): admission marks a rebuild with the
//! builder that last built its project; a daemon hands it to that builder only while it is
//! alive, has a free slot and the bound has not passed; a handed build is taken up by its
//! builder, or by any daemon once its deadline passes, and by exactly one.

use std::time::{Duration, Instant};

use kiln_shared::domain::{ProjectId, UserId, VersionId};
use kiln_shared::redis::{
    connect, Admission, Affinity, Elsewhere, Fleet, HandTo, Job, Keys, Queue, QuotaLimits,
};

const LEASE: Duration = Duration::from_secs(60);
const HEARTBEAT_LEASE: Duration = Duration::from_secs(15);

fn queue() -> Queue {
    let url = std::env::var("KILN_TEST_REDIS_URL").expect("run the tests through ops/test.sh");
    let pool = connect(&url.into(), Duration::from_secs(2)).unwrap();
    let prefix = format!(
        "affinity-test-{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    Queue::new(pool, Keys::new(prefix))
}

fn fleet(q: &Queue) -> Fleet {
    Fleet::new(q.redis().clone(), q.keys().clone(), HEARTBEAT_LEASE)
}

/// Admits a build of project `p` and reads it as consumer `reader`.
async fn admit_and_read(q: &Queue, p: &str, reader: &str) -> Job {
    let (u, p) = (UserId::parse("u").unwrap(), ProjectId::parse(p).unwrap());
    let admitted = q
        .admit(
            VersionId::new(),
            &u,
            &p,
            &format!("{p}-label"),
            &QuotaLimits::NONE,
            false,
        )
        .await
        .unwrap();
    assert!(matches!(admitted, Admission::Queued { .. }), "{admitted:?}");
    q.reader(Duration::from_millis(100))
        .read(reader)
        .await
        .unwrap()
        .expect("queued")
}

#[tokio::test]
async fn admission_marks_a_rebuild_with_the_builder_that_built_the_project_last() {
    let q = queue();
    q.ensure_group().await.unwrap();
    let (u, p) = (UserId::parse("u").unwrap(), ProjectId::parse("p").unwrap());
    let first = admit_and_read(&q, "p", "b1").await;
    assert_eq!(first.prefer, None, "a project nobody built prefers no builder");
    assert_eq!(first.affinity, Affinity::None);
    q.remember_builder(&u, &p, "b1").await.unwrap();
    assert!(q.ack("b1", &first.entry_id).await.unwrap());
    q.release(&first.build_id.to_string(), &u, &p).await.unwrap();
    let second = admit_and_read(&q, "p", "b2").await;
    assert_eq!(second.prefer.as_deref(), Some("b1"));
    assert_eq!(q.preferred_builder(&u, &p).await.unwrap().as_deref(), Some("b1"));
}

#[tokio::test]
async fn a_build_is_handed_only_to_a_live_builder_with_a_free_slot_within_the_bound() {
    let q = queue();
    q.ensure_group().await.unwrap();
    let fleet = fleet(&q);
    let bound = Duration::from_secs(5);
    let job = admit_and_read(&q, "p", "b2").await;

    // b1 never heartbeated: dead.
    let answer = q.hand_to("b2", &job, "b1", bound, HEARTBEAT_LEASE).await.unwrap();
    assert_eq!(answer, HandTo::Keep(Elsewhere::Dead));

    // b1 drains: it reads no more builds.
    fleet
        .heartbeat("b1", 1, &serde_json::json!({ "draining": true }))
        .await
        .unwrap();
    let answer = q.hand_to("b2", &job, "b1", bound, HEARTBEAT_LEASE).await.unwrap();
    assert_eq!(answer, HandTo::Keep(Elsewhere::Dead));

    // b1 is alive with one slot, taken by a build of another project: busy.
    fleet.heartbeat("b1", 1, &serde_json::json!({})).await.unwrap();
    let other = admit_and_read(&q, "other", "b1").await;
    let answer = q.hand_to("b2", &job, "b1", bound, HEARTBEAT_LEASE).await.unwrap();
    assert_eq!(answer, HandTo::Keep(Elsewhere::Busy));

    // With two slots it has room: the entry moves to b1's pending list.
    fleet.heartbeat("b1", 2, &serde_json::json!({})).await.unwrap();
    let answer = q.hand_to("b2", &job, "b1", bound, HEARTBEAT_LEASE).await.unwrap();
    assert_eq!(answer, HandTo::Handed);
    assert!(!q.ack("b2", &job.entry_id).await.unwrap(), "b2 no longer owns it");
    assert_eq!(
        q.hand_to("b2", &job, "b1", bound, HEARTBEAT_LEASE).await.unwrap(),
        HandTo::Lost,
        "what b2 does not own it cannot hand on"
    );
    assert_eq!(q.depth().await.unwrap(), 2, "the entry never left the stream");

    // b1's reader wakes at once on the nudge (its block is long), and b1 takes the build up.
    let mut reader = q.reader(Duration::from_secs(5));
    let woke = Instant::now();
    assert!(
        reader.read("b1").await.unwrap().is_none(),
        "a nudge, not a new build"
    );
    let nudges = reader.take_nudges();
    assert!(
        woke.elapsed() < Duration::from_secs(2),
        "woken by the nudge: {:?}",
        woke.elapsed()
    );
    assert_eq!(nudges.len(), 1);
    let taken = q.take("b1", LEASE, &nudges).await.unwrap().expect("handed to b1");
    assert_eq!((taken.build_id, &taken.entry_id), (job.build_id, &job.entry_id));
    assert_eq!(taken.affinity, Affinity::Handed);
    assert!(!taken.reclaimed);
    assert!(q.take("b1", LEASE, &[]).await.unwrap().is_none(), "taken once");
    assert!(
        q.take("b2", LEASE, &[]).await.unwrap().is_none(),
        "and by nobody else"
    );
    assert!(q.renew("b1", &job.entry_id).await.unwrap());
    assert!(q.ack("b1", &job.entry_id).await.unwrap());
    assert!(q.ack("b1", &other.entry_id).await.unwrap());
    assert_eq!(q.depth().await.unwrap(), 0);
}

#[tokio::test]
async fn a_handed_build_its_builder_does_not_take_up_goes_to_any_daemon_after_the_bound() {
    let q = queue();
    q.ensure_group().await.unwrap();
    fleet(&q)
        .heartbeat("b1", 1, &serde_json::json!({}))
        .await
        .unwrap();
    let bound = Duration::from_millis(600);
    let (u, p) = (UserId::parse("u").unwrap(), ProjectId::parse("p").unwrap());
    q.remember_builder(&u, &p, "b1").await.unwrap();
    let job = admit_and_read(&q, "p", "b2").await;
    assert_eq!(job.prefer.as_deref(), Some("b1"));
    assert_eq!(
        q.hand_to("b2", &job, "b1", bound, HEARTBEAT_LEASE).await.unwrap(),
        HandTo::Handed
    );
    // Before its deadline, nobody but b1 takes it.
    assert!(q.take("b3", LEASE, &[]).await.unwrap().is_none());
    tokio::time::sleep(bound).await;
    let taken = q.take("b3", LEASE, &[]).await.unwrap().expect("overdue");
    assert_eq!(taken.entry_id, job.entry_id);
    assert_eq!(
        taken.affinity,
        Affinity::Elsewhere {
            prefer: "b1".into(),
            why: Elsewhere::Bound
        }
    );
    assert!(!taken.reclaimed, "a build that never started is not a take-over");
    assert!(q.take("b1", LEASE, &[]).await.unwrap().is_none(), "b1 lost it");
    assert!(q.take("b2", LEASE, &[]).await.unwrap().is_none());
    assert!(!q.ack("b1", &job.entry_id).await.unwrap());
    assert!(q.ack("b3", &job.entry_id).await.unwrap());

    // A build queued longer ago than the bound is not handed at all.
    let late = admit_and_read(&q, "late", "b2").await;
    tokio::time::sleep(bound).await;
    assert_eq!(
        q.hand_to("b2", &late, "b1", bound, HEARTBEAT_LEASE)
            .await
            .unwrap(),
        HandTo::Keep(Elsewhere::Bound)
    );
}

#[tokio::test]
async fn a_handed_build_whose_builder_died_is_still_reclaimed_after_a_lease() {
    let q = queue();
    q.ensure_group().await.unwrap();
    fleet(&q)
        .heartbeat("b1", 1, &serde_json::json!({}))
        .await
        .unwrap();
    let job = admit_and_read(&q, "p", "b2").await;
    let bound = Duration::from_secs(60);
    assert_eq!(
        q.hand_to("b2", &job, "b1", bound, HEARTBEAT_LEASE).await.unwrap(),
        HandTo::Handed
    );
    // The bound is far, but the entry sat in b1's pending list a lease: the lost path takes it.
    let lease = Duration::from_millis(300);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taken = q.take("b3", lease, &[]).await.unwrap().expect("reclaimed");
    assert_eq!(
        (taken.entry_id.as_str(), taken.reclaimed),
        (job.entry_id.as_str(), true)
    );
    assert!(
        q.take("b1", lease, &[]).await.unwrap().is_none(),
        "b1's handoff is gone with it"
    );
}

#[tokio::test]
async fn an_overdue_build_raced_for_by_many_daemons_and_its_builder_is_taken_once() {
    let q = queue();
    q.ensure_group().await.unwrap();
    fleet(&q)
        .heartbeat("b1", 1, &serde_json::json!({}))
        .await
        .unwrap();
    let (u, p) = (UserId::parse("u").unwrap(), ProjectId::parse("p").unwrap());
    q.remember_builder(&u, &p, "b1").await.unwrap();
    let bound = Duration::from_millis(300);
    let job = admit_and_read(&q, "p", "b2").await;
    assert_eq!(
        q.hand_to("b2", &job, "b1", bound, HEARTBEAT_LEASE).await.unwrap(),
        HandTo::Handed
    );
    tokio::time::sleep(bound).await;
    // b1 wakes late, just as eight other daemons find the build overdue.
    let racers: Vec<_> = ["b1", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"]
        .into_iter()
        .map(|name| {
            let q = q.on_another_connection().unwrap();
            tokio::spawn(async move { (name, q.take(name, LEASE, &[]).await.unwrap()) })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        let (name, taken) = racer.await.unwrap();
        if let Some(taken) = taken {
            assert_eq!(taken.entry_id, job.entry_id);
            winners.push(name);
        }
    }
    assert_eq!(winners.len(), 1, "taken by {winners:?}");
    assert!(
        q.ack(winners[0], &job.entry_id).await.unwrap(),
        "the winner owns it"
    );
    assert_eq!(q.depth().await.unwrap(), 0);
}
