//! Affinity: a rebuild lands on the daemon that built its project last (its tree is warm
//! there), never at the cost of an idle fleet: a build waits for that daemon at most
//! `KILN_AFFINITY_MS`, and only while it is alive and has a free slot.
//!
//! Two daemons with work folders of their own. A daemon that heartbeats but never reads (one
//! killed a moment ago, before its lease ran out) is played by the test: it heartbeats as
//! `ghost` and is named the project's builder.

use std::time::{Duration, Instant};

use kiln_shared::domain::{ProjectId, UserId};
use kiln_shared::redis::{Fleet, Keys, Queue};
use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, BuilderHandle, Options, TestApp};

const USER: &str = "u_affinity";

fn site(text: &str) -> Value {
    json!([{ "path": "index.html", "content": format!("<h1>{text}</h1>") }])
}

/// A project whose build runs `script` (a shell command) through pnpm.
fn project_running(script: &str) -> Value {
    json!([
        { "path": "package.json", "content": json!({ "name": "p", "private": true, "scripts": { "build": script } }).to_string() },
        { "path": "index.html", "content": "<h1>x</h1>" },
    ])
}

/// A daemon named `name` with a work folder (and pnpm store) of its own, its affinity bound
/// set to `bound` (`None`: off).
fn builder(app: &TestApp, name: &str, bound: Option<Duration>) -> BuilderHandle {
    let work = app.settings.builder.work_dir.join(name);
    std::fs::create_dir_all(&work).unwrap();
    std::fs::set_permissions(&work, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    app.start_builder(name, |s| {
        s.builder.pnpm_store = work.join("pnpm-store");
        s.builder.work_dir = work;
        s.fleet.affinity = bound;
    })
}

fn queue(app: &TestApp) -> Queue {
    let redis = kiln_shared::redis::connect(&app.settings.redis.url, Duration::from_secs(5)).unwrap();
    Queue::new(redis, Keys::new(app.settings.redis.prefix.clone()))
}

/// Plays a daemon that heartbeats (one free slot) but never reads: one that just died.
async fn ghost(q: &Queue) {
    let fleet = Fleet::new(
        q.redis().clone(),
        q.keys().clone(),
        kiln_shared::redis::fleet::LEASE,
    );
    fleet.heartbeat("ghost", 1, &json!({})).await.unwrap();
}

/// Waits until both daemons heartbeat, so that either may read the next build.
async fn both_live(app: &TestApp) {
    let started = Instant::now();
    loop {
        let fleet = app.get_json("/v1/builders").await;
        if fleet["builders"].as_array().map(Vec::len) == Some(2) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{fleet}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn build(app: &TestApp, project: &str, files: Value) -> Value {
    let id = app.submit(&build_body(USER, project, files)).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    build
}

fn queued_for(build: &Value) -> Duration {
    Duration::from_millis(
        build["metrics"]["queueMs"]
            .as_u64()
            .unwrap_or_else(|| panic!("{build}")),
    )
}

/// `kiln_affinity_total{outcome}` summed over the live daemons (read from their `/metrics`;
/// the ghost has none).
async fn affinity_count(app: &TestApp, outcome: &str) -> u64 {
    let fleet = app.get_json("/v1/builders").await;
    let mut sum = 0;
    for b in fleet["builders"].as_array().unwrap() {
        let Some(addr) = b["metricsAddr"].as_str() else {
            assert_eq!(b["id"], "ghost", "{b}");
            continue;
        };
        let text = app
            .client
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let label = format!("outcome=\"{outcome}\"");
        sum += text
            .lines()
            .filter(|l| l.starts_with("kiln_affinity_total{") && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    sum
}

#[tokio::test]
async fn a_rebuild_goes_to_the_daemon_that_built_the_project_last_though_another_is_idle() {
    let app = spawn_app(Options::without_builders()).await;
    let bound = Some(Duration::from_secs(2));
    let _one = builder(&app, "warm-one", bound);
    let _two = builder(&app, "warm-two", bound);
    both_live(&app).await;
    let project = unique("warm");
    let first = build(&app, &project, site("first")).await;
    let warm = first["builderId"].as_str().unwrap().to_owned();
    for n in 0..5 {
        let again = build(&app, &project, site(&format!("again {n}"))).await;
        assert_eq!(again["builderId"], warm.as_str(), "rebuild {n}: {again}");
        let id = again["id"].as_str().unwrap();
        let log = app.log_text(id).await;
        assert!(
            log.contains(&format!(
                "[kiln] building on {warm}, the builder that built this project last"
            )) || log.contains(&format!(
                "[kiln] handed to {warm}, the builder that built this project last"
            )),
            "{log}"
        );
        // Handed or read at once: it never waited for a bound.
        assert!(queued_for(&again) < Duration::from_millis(1500), "{again}");
    }
    let on_warm = affinity_count(&app, "preferred").await + affinity_count(&app, "handed").await;
    assert_eq!(on_warm, 5, "every rebuild ran on its preferred daemon");
    for elsewhere in ["busy", "dead", "bound"] {
        assert_eq!(affinity_count(&app, elsewhere).await, 0, "{elsewhere}");
    }
}

#[tokio::test]
async fn a_rebuild_whose_daemon_is_busy_starts_on_the_idle_one_at_once() {
    let app = spawn_app(Options::without_builders()).await;
    // A long bound: a build that waited for it would show.
    let bound = Some(Duration::from_secs(10));
    let one = builder(&app, "busy-one", bound);
    let (slow_project, project) = (unique("slow"), unique("quick"));
    // Both projects are built first on busy-one, the only daemon then.
    build(&app, &slow_project, site("slow, first")).await;
    build(&app, &project, site("quick, first")).await;
    let _two = builder(&app, "busy-two", bound);
    both_live(&app).await;

    // busy-one's slot is taken by a rebuild of the slow project (it prefers busy-one too).
    let slow = app
        .submit(&build_body(
            USER,
            &slow_project,
            project_running("sleep 8; mkdir -p dist; echo ok > dist/index.html"),
        ))
        .await;
    let running = app.wait_for_status(&slow, "running").await;
    assert_eq!(running["builderId"], "busy-one", "{running}");

    let quick = build(&app, &project, site("quick, again")).await;
    assert_eq!(quick["builderId"], "busy-two", "{quick}");
    assert!(
        queued_for(&quick) < Duration::from_millis(2000),
        "it did not wait for the busy daemon: {quick}"
    );
    let log = app.log_text(quick["id"].as_str().unwrap()).await;
    assert!(
        log.contains("[kiln] preferred builder busy-one is busy; building on busy-two"),
        "{log}"
    );
    assert_eq!(app.wait(&slow).await["builderId"], "busy-one");
    drop(one);
}

#[tokio::test]
async fn a_rebuild_whose_daemon_is_dead_starts_elsewhere_within_the_bound() {
    let app = spawn_app(Options::without_builders()).await;
    let bound = Duration::from_millis(1500);
    let q = queue(&app);
    let _live = builder(&app, "dead-live", Some(bound));
    let project = unique("orphan");
    build(&app, &project, site("first")).await;

    // The project's daemon died a moment ago: it still looks alive (its heartbeat is within
    // the lease) and has a free slot, but it never takes the build. The build is handed to it
    // and, once the bound has passed, taken by the live daemon.
    let (u, p) = (UserId::parse(USER).unwrap(), ProjectId::parse(&project).unwrap());
    ghost(&q).await;
    q.remember_builder(&u, &p, "ghost").await.unwrap();
    let orphan = build(&app, &project, site("orphan")).await;
    assert_eq!(orphan["builderId"], "dead-live", "{orphan}");
    let waited = queued_for(&orphan);
    assert!(
        waited >= bound - Duration::from_millis(200) && waited < bound + Duration::from_millis(1500),
        "waited {waited:?} for a bound of {bound:?}: {orphan}"
    );
    let log = app.log_text(orphan["id"].as_str().unwrap()).await;
    assert!(
        log.contains("[kiln] preferred builder ghost did not take the build within KILN_AFFINITY_MS; building on dead-live"),
        "{log}"
    );
    assert_eq!(affinity_count(&app, "handed_off").await, 1);
    assert_eq!(affinity_count(&app, "bound").await, 1);

    // A daemon that left the fleet (stopped: no heartbeat) is not waited for at all.
    let gone = builder(&app, "dead-gone", Some(bound));
    both_live(&app).await;
    q.remember_builder(&u, &p, "dead-gone").await.unwrap();
    gone.shutdown.cancel();
    gone.task.await.unwrap().unwrap();
    let next = build(&app, &project, site("next")).await;
    assert_eq!(next["builderId"], "dead-live", "{next}");
    assert!(queued_for(&next) < Duration::from_millis(1000), "{next}");
    let log = app.log_text(next["id"].as_str().unwrap()).await;
    assert!(
        log.contains("[kiln] preferred builder dead-gone is not alive (no heartbeat) or is draining; building on dead-live"),
        "{log}"
    );
    assert_eq!(q.depth().await.unwrap(), 0);
}

#[tokio::test]
async fn with_affinity_off_any_free_daemon_takes_any_build() {
    let app = spawn_app(Options::without_builders()).await;
    let q = queue(&app);
    let _live = builder(&app, "off-one", None);
    let project = unique("free");
    build(&app, &project, site("first")).await;
    let (u, p) = (UserId::parse(USER).unwrap(), ProjectId::parse(&project).unwrap());
    assert_eq!(
        q.preferred_builder(&u, &p).await.unwrap(),
        None,
        "nothing is recorded with affinity off"
    );
    // Even a build that prefers a builder alive with a free slot is not handed to it.
    ghost(&q).await;
    q.remember_builder(&u, &p, "ghost").await.unwrap();
    for n in 0..3 {
        let again = build(&app, &project, site(&format!("again {n}"))).await;
        assert_eq!(again["builderId"], "off-one", "{again}");
        assert!(queued_for(&again) < Duration::from_millis(1000), "{again}");
        let log = app.log_text(again["id"].as_str().unwrap()).await;
        assert!(!log.contains("preferred builder"), "{log}");
    }
    assert_eq!(affinity_count(&app, "handed_off").await, 0);
}
