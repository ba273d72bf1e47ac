//! The build stream, in-flight claims, the latest pointer and idempotency records, on a real
//! Redis (a key prefix per test).

use std::time::{Duration, Instant};

use kiln_shared::domain::{ProjectId, UserId, VersionId};
use kiln_shared::redis::{
    connect, Admission, Claim, Idempotency, IdempotencyRecord, Keys, LatestPointer, Queue, Quota, QuotaLimits,
};

fn queue() -> Queue {
    let url = std::env::var("KILN_TEST_REDIS_URL").expect("run the tests through ops/test.sh");
    let pool = connect(&url.into(), Duration::from_secs(2)).unwrap();
    let prefix = format!(
        "queue-test-{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    Queue::new(pool, Keys::new(prefix))
}

fn ids() -> (UserId, ProjectId) {
    (UserId::parse("u").unwrap(), ProjectId::parse("p").unwrap())
}

#[tokio::test]
async fn a_preview_label_stays_with_the_first_project_that_took_it() {
    let q = queue();
    q.ensure_group().await.unwrap();
    let (u, p) = ids();
    let other = ProjectId::parse("other").unwrap();
    assert!(matches!(
        q.admit(
            VersionId::new(),
            &u,
            &p,
            "shared-label",
            &QuotaLimits::NONE,
            false
        )
        .await
        .unwrap(),
        Admission::Queued { .. }
    ));
    // Another project whose label collides (found or made): refused, nothing written.
    assert_eq!(
        q.admit(
            VersionId::new(),
            &u,
            &other,
            "shared-label",
            &QuotaLimits::NONE,
            false
        )
        .await
        .unwrap(),
        Admission::LabelTaken
    );
    assert_eq!(q.depth().await.unwrap(), 1);
    assert_eq!(q.inflight(&u, &other).await.unwrap(), None);
    let label = q.label("shared-label").await.unwrap().unwrap();
    assert_eq!((label.user_id, label.project_id), (u, p));
}

#[tokio::test]
async fn one_claim_per_project_released_only_by_its_holder() {
    let q = queue();
    q.ensure_group().await.unwrap();
    q.ensure_group().await.unwrap(); // BUSYGROUP is not an error
    let (u, p) = ids();
    let (a, b) = (VersionId::new(), VersionId::new());
    assert!(matches!(
        q.admit(a, &u, &p, "p-label", &QuotaLimits::NONE, false)
            .await
            .unwrap(),
        Admission::Queued { .. }
    ));
    assert_eq!(
        q.admit(b, &u, &p, "p-label", &QuotaLimits::NONE, false)
            .await
            .unwrap(),
        Admission::Conflict {
            holder: a.to_string()
        }
    );
    assert_eq!(q.depth().await.unwrap(), 1, "the loser queued nothing");
    assert!(
        !q.release(&b.to_string(), &u, &p).await.unwrap(),
        "only the holder releases"
    );
    assert_eq!(q.inflight(&u, &p).await.unwrap(), Some(a.to_string()));
    assert!(q.release(&a.to_string(), &u, &p).await.unwrap());
    assert!(matches!(
        q.admit(b, &u, &p, "p-label", &QuotaLimits::NONE, false)
            .await
            .unwrap(),
        Admission::Queued { .. }
    ));
    let label = q.label("p-label").await.unwrap().unwrap();
    assert_eq!((label.user_id, label.project_id), (u, p));
}

#[tokio::test]
async fn quotas_count_admitted_builds_once_reserve_for_replacers_and_refund() {
    let q = queue();
    let (u, p) = ids();
    let quotas = QuotaLimits {
        new_projects: 1,
        rebuilds: 2,
        window: Duration::from_secs(3600),
    };
    let admit = |id, project: &ProjectId, label: &'static str, replace| {
        let (q, u, project) = (q.clone(), u.clone(), project.clone());
        async move { q.admit(id, &u, &project, label, &quotas, replace).await.unwrap() }
    };
    // A project never admitted is a new one: the user's one new project.
    let first = VersionId::new();
    assert!(matches!(
        admit(first, &p, "l", false).await,
        Admission::Queued { .. }
    ));
    let p2 = ProjectId::parse("p2").unwrap();
    let Admission::OverQuota(hit) = admit(VersionId::new(), &p2, "l2", false).await else {
        panic!("a second new project fits no quota of 1");
    };
    assert_eq!((hit.quota, hit.limit), (Quota::NewProjects, 1));
    assert!(hit.retry_after > Duration::from_secs(3590) && hit.retry_after <= Duration::from_secs(3600));
    let pre = q.preflight(&u, &p2, "l2", &quotas, None).await.unwrap();
    assert_eq!(
        (pre.holder, pre.over_quota.map(|h| h.quota)),
        (None, Some(Quota::NewProjects))
    );
    assert_eq!(q.depth().await.unwrap(), 1, "nothing queued for the refused one");

    // A later build is a rebuild. Its conflict with the build in flight costs nothing...
    let r1 = VersionId::new();
    let held = Admission::Conflict {
        holder: first.to_string(),
    };
    assert_eq!(admit(r1, &p, "l", false).await, held);
    // ...unless it will replace the holder: then its unit is taken first, and counted once.
    assert_eq!(admit(r1, &p, "l", true).await, held);
    assert!(q.release(&first.to_string(), &u, &p).await.unwrap());
    assert!(matches!(admit(r1, &p, "l", true).await, Admission::Queued { .. }));
    let r2 = VersionId::new();
    assert_eq!(
        admit(r2, &p, "l", true).await,
        Admission::Conflict {
            holder: r1.to_string()
        },
        "the second rebuild reserves the last unit"
    );
    let r3 = VersionId::new();
    let Admission::OverQuota(hit) = admit(r3, &p, "l", true).await else {
        panic!("both rebuild units are taken");
    };
    assert_eq!((hit.quota, hit.limit), (Quota::Rebuilds, 2));
    // A replacer that gives up gives its unit back.
    q.refund(r2, &u, &p).await.unwrap();
    assert!(matches!(
        admit(r3, &p, "l", true).await,
        Admission::Conflict { .. }
    ));
    // No quota: nothing is counted.
    let Admission::Conflict { .. } = q
        .admit(VersionId::new(), &u, &p, "l", &QuotaLimits::NONE, true)
        .await
        .unwrap()
    else {
        panic!("the slot is still held");
    };
}

#[tokio::test]
async fn an_idle_blocking_read_returns_nothing_and_a_late_entry_is_delivered() {
    // The block (1.5 s) is longer than the redis crate's default response timeout (0.5 s) and
    // than the shared connection's (2 s here): a reader's connection must outlive it, or the
    // read fails and Redis may still hand it an entry nobody processes.
    let q = queue();
    q.ensure_group().await.unwrap();
    let mut reader = q.reader(Duration::from_millis(2500));
    let started = Instant::now();
    assert!(reader.read("c1").await.unwrap().is_none());
    assert!(started.elapsed() >= Duration::from_millis(2400));

    let (u, p) = ids();
    let id = VersionId::new();
    let writer = q.clone();
    let (u2, p2) = (u.clone(), p.clone());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        writer
            .admit(id, &u2, &p2, "l", &QuotaLimits::NONE, false)
            .await
            .unwrap();
    });
    let job = reader
        .read("c1")
        .await
        .unwrap()
        .expect("the entry added while blocked");
    assert_eq!(job.build_id, id);
    assert_eq!((job.user_id, job.project_id), (u, p));
    let mut other = q.reader(Duration::from_millis(100));
    assert!(other.read("c2").await.unwrap().is_none(), "delivered once");
    assert!(!q.ack("c2", &job.entry_id).await.unwrap(), "only the owner acks");
    assert!(q.ack("c1", &job.entry_id).await.unwrap());
    assert_eq!(q.depth().await.unwrap(), 0, "acked entries leave the stream");
}

#[tokio::test]
async fn an_unrenewed_claim_is_reclaimed_and_fences_its_old_owner() {
    let q = queue();
    q.ensure_group().await.unwrap();
    let (u, p) = ids();
    let id = VersionId::new();
    q.admit(id, &u, &p, "l", &QuotaLimits::NONE, false).await.unwrap();
    let job = q
        .reader(Duration::from_millis(100))
        .read("dead")
        .await
        .unwrap()
        .expect("queued");
    let lease = Duration::from_millis(300);
    assert!(
        q.reclaim("alive", lease).await.unwrap().is_none(),
        "a fresh claim is not reclaimed"
    );

    // Renewing keeps the claim past the lease.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(q.renew("dead", &job.entry_id).await.unwrap());
    }
    assert!(
        q.reclaim("alive", lease).await.unwrap().is_none(),
        "a renewed claim is kept"
    );

    // Unrenewed for a lease: taken over, and the old owner can neither renew nor ack it.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let taken = q.reclaim("alive", lease).await.unwrap().expect("reclaimed");
    assert_eq!((taken.build_id, taken.reclaimed), (id, true));
    assert_eq!(taken.entry_id, job.entry_id);
    assert!(!q.renew("dead", &job.entry_id).await.unwrap());
    assert!(!q.ack("dead", &job.entry_id).await.unwrap());
    assert!(q.renew("alive", &job.entry_id).await.unwrap());

    // Handed back: a new entry any consumer reads; the old one is gone.
    assert!(
        !q.hand_back("dead", &taken, false).await.unwrap(),
        "only the owner hands back"
    );
    assert!(q.hand_back("alive", &taken, false).await.unwrap());
    assert_eq!(q.depth().await.unwrap(), 1);
    let again = q
        .reader(Duration::from_millis(100))
        .read("third")
        .await
        .unwrap()
        .expect("handed back");
    assert_eq!((again.build_id, again.reclaimed), (id, false));
    assert_ne!(again.entry_id, job.entry_id);

    // Handed back as a take-over (a reclaimed build its daemon could not run): the next reader
    // takes it over too.
    assert!(q.hand_back("third", &again, true).await.unwrap());
    let over = q
        .reader(Duration::from_millis(100))
        .read("fourth")
        .await
        .unwrap()
        .expect("handed back");
    assert_eq!((over.build_id, over.reclaimed), (id, true));
}

#[tokio::test]
async fn latest_pointers_and_idempotency_records_round_trip() {
    let q = queue();
    let (u, p) = ids();
    assert_eq!(q.latest(&u, &p).await.unwrap(), None);
    let pointer = LatestPointer {
        latest_version_id: VersionId::new(),
        preview_url: "http://x.localhost/".into(),
        timestamp: chrono::Utc::now(),
    };
    q.set_latest(&u, &p, &pointer).await.unwrap();
    assert_eq!(q.latest(&u, &p).await.unwrap(), Some(pointer));

    let idem = Idempotency::new(q.redis().clone(), q.keys().clone());
    assert_eq!(idem.claim("key", "a").await.unwrap(), Claim::Fresh);
    assert_eq!(idem.claim("key", "a").await.unwrap(), Claim::InProgress);
    assert_eq!(idem.claim("key", "b").await.unwrap(), Claim::Mismatch);
    // Only its own reservation is renewed (same body), and only while it is one.
    assert!(idem.renew("key", "a").await.unwrap());
    assert!(!idem.renew("key", "b").await.unwrap());
    assert!(!idem.renew("never-claimed", "a").await.unwrap());
    let first = IdempotencyRecord {
        body_hash: "a".into(),
        status: 202,
        response: serde_json::json!({"n": 1}),
    };
    idem.complete("key", &first).await.unwrap();
    assert!(
        !idem.renew("key", "a").await.unwrap(),
        "a completed record keeps its own expiry"
    );
    assert_eq!(idem.claim("key", "a").await.unwrap(), Claim::Replay(first));
    assert_eq!(idem.claim("key", "b").await.unwrap(), Claim::Mismatch);
    // A released key (its request was refused) is free again.
    assert_eq!(idem.claim("other", "c").await.unwrap(), Claim::Fresh);
    idem.release("other").await.unwrap();
    assert_eq!(idem.claim("other", "d").await.unwrap(), Claim::Fresh);
}

#[tokio::test]
async fn an_entry_that_describes_no_build_goes_to_the_dead_letters_once() {
    let q = queue();
    q.ensure_group().await.unwrap();
    let url = std::env::var("KILN_TEST_REDIS_URL").unwrap();
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stream = q.keys().stream();
    let add = |fields: &[(&str, &str)]| {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&stream).arg("*");
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        cmd
    };
    // Read as a new entry: quarantined, not returned, and gone from the stream.
    let _: String = add(&[("build_id", "not-a-ulid"), ("user_id", "u"), ("project_id", "p")])
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut reader = q.reader(Duration::from_millis(100));
    assert!(reader.read("b1").await.unwrap().is_none());
    assert_eq!(q.depth().await.unwrap(), 0);

    // Delivered to a consumer that died before parsing it: its reclaim quarantines it too,
    // instead of handing it from daemon to daemon forever.
    let _: String = add(&[("user_id", "u")]).query_async(&mut conn).await.unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("builders")
        .arg("dead")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(&stream)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(q
        .reclaim("b2", Duration::from_millis(10))
        .await
        .unwrap()
        .is_none());
    assert_eq!(q.depth().await.unwrap(), 0);
    assert!(q
        .reclaim("b3", Duration::from_millis(10))
        .await
        .unwrap()
        .is_none());

    let dead: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(q.keys().dead_letters())
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead.ids.len(), 2);
    let first = &dead.ids[0];
    let error: String = first.get("error").unwrap();
    assert!(error.contains("not a valid id"), "{error}");
    assert_eq!(
        first.get::<String>("field:build_id").as_deref(),
        Some("not-a-ulid")
    );
    let second: String = dead.ids[1].get("error").unwrap();
    assert!(second.contains("field build_id is missing"), "{second}");
    // A valid build after them is read normally.
    let (u, p) = ids();
    let id = VersionId::new();
    q.admit(id, &u, &p, "l", &QuotaLimits::NONE, false).await.unwrap();
    assert_eq!(reader.read("b1").await.unwrap().unwrap().build_id, id);
}

/// A preview that read a project's row just before the row changed does not put the old copy
/// back in the cache after the change (a private project would be served as public, or a
/// revoked share link accepted, until the copy expired).
#[tokio::test]
async fn a_gate_read_before_a_change_is_not_cached_after_it() {
    use kiln_shared::domain::PreviewAccess;
    use kiln_shared::redis::ProjectGate;
    let q = queue();
    let (u, p) = ids();
    let public = ProjectGate {
        access: PreviewAccess::Public,
        indexable: false,
        share_key: None,
    };
    // A reader misses, reads the old row; meanwhile the project is made private.
    let seen = q.project_gate(&u, &p).await.unwrap();
    assert!(seen.gate.is_none());
    q.forget_project(&u, &p).await.unwrap();
    assert!(!q.fill_project_gate(&u, &p, &public, &seen).await.unwrap());
    assert!(q.project_gate(&u, &p).await.unwrap().gate.is_none());
    // A reader that started after the change caches what it read.
    let private = ProjectGate {
        access: PreviewAccess::Private,
        ..public.clone()
    };
    let seen = q.project_gate(&u, &p).await.unwrap();
    assert!(q.fill_project_gate(&u, &p, &private, &seen).await.unwrap());
    assert_eq!(q.project_gate(&u, &p).await.unwrap().gate, Some(private.clone()));
    // A change drops it again.
    q.forget_project(&u, &p).await.unwrap();
    assert!(q.project_gate(&u, &p).await.unwrap().gate.is_none());
}
