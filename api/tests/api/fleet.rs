//! A fleet that loses nothing: lost builders are replaced (and fenced out), builds are cancelled
//! and retried, draining daemons hand their builds back.
//!
//! A "dead" builder is played by the test itself: it takes a build from the stream as a
//! consumer of its own and starts it, then never renews its claim, exactly what a daemon killed
//! with `kill -9` leaves behind.

use std::time::{Duration, Instant};

use kiln_shared::db::versions::{self, Deployed, Metrics};
use kiln_shared::domain::VersionId;
use kiln_shared::redis::{Job, Keys, Queue};
use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options, TestApp};

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

fn queue(app: &TestApp) -> Queue {
    let redis = kiln_shared::redis::connect(&app.settings.redis.url, Duration::from_secs(5)).unwrap();
    Queue::new(redis, Keys::new(app.settings.redis.prefix.clone()))
}

/// Takes the next build from the stream as consumer `name` and starts it, as a daemon would,
/// then stops there: the caller plays a builder that died.
async fn take_and_die(app: &TestApp, q: &Queue, name: &str) -> (Job, i32) {
    q.ensure_group().await.unwrap();
    let job = q
        .reader(Duration::from_millis(500))
        .read(name)
        .await
        .unwrap()
        .expect("a queued build");
    let started = versions::start(&app.db, job.build_id, name)
        .await
        .unwrap()
        .expect("the build was queued");
    (job, started.attempts)
}

/// What a builder records when its attempt deploys (`None`: the attempt was fenced out).
async fn record_deployed(
    app: &TestApp,
    id: VersionId,
    attempt: i32,
    output_key: &str,
) -> Option<versions::Version> {
    let metrics = Metrics::default();
    let deployed = Deployed {
        sources: None,
        output_manifest_key: output_key,
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
    versions::mark_deployed(&app.db, id, attempt, &deployed)
        .await
        .unwrap()
}

fn fast_lease(s: &mut kiln_shared::config::Settings) {
    s.fleet.lease = Duration::from_secs(1);
}

async fn event_types(app: &TestApp, id: &str) -> Vec<String> {
    app.final_events(id)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_lost_builders_build_is_taken_over_and_its_late_writes_are_fenced() {
    let app = spawn_app(Options::without_builders()).await;
    let q = queue(&app);
    let id = app
        .submit(&build_body("u_fleet", &unique("lost"), site("lost")))
        .await;
    let (job, attempt) = take_and_die(&app, &q, "dead-builder").await;
    assert_eq!(job.build_id.to_string(), id);
    assert_eq!(attempt, 1);

    // A live daemon reclaims the build once its claim has gone a lease (1 s) unrenewed.
    let started = Instant::now();
    let _live = app.start_builder("live-builder", fast_lease);
    let build = app.wait(&id).await;
    let took = started.elapsed();
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(build["attempts"], 2, "{build}");
    assert_eq!(build["lostBuilders"], 1, "{build}");
    assert_eq!(build["builderId"], "live-builder", "{build}");
    assert!(took < Duration::from_secs(30), "took {took:?}");

    // The dead builder comes back: nothing it writes counts any more.
    let late = record_deployed(&app, job.build_id, attempt, "manifests/forged/output.json").await;
    let metrics = Metrics::default();
    assert!(late.is_none(), "a fenced attempt recorded a result");
    let failed = versions::mark_failed(
        &app.db,
        job.build_id,
        Some(attempt),
        &versions::Failed::new(kiln_shared::domain::Step::Build, "command_failed", "late"),
        &metrics,
    )
    .await
    .unwrap();
    assert!(!failed);
    assert!(!q.ack("dead-builder", &job.entry_id).await.unwrap());
    let event = kiln_shared::db::events::record_for(
        &app.db,
        job.build_id,
        Some(attempt),
        kiln_shared::domain::EventType::BuildFailed,
        &json!({}),
    )
    .await
    .unwrap();
    assert!(event.is_none(), "a fenced attempt recorded an event");

    let types = event_types(&app, &id).await;
    assert_eq!(
        types.iter().filter(|t| *t == "build_started").count(),
        1,
        "only the live attempt's events: {types:?}"
    );
    assert_eq!(types.last().unwrap(), "deploy_completed", "{types:?}");
    let again = app.get_json(&format!("/v1/builds/{id}")).await;
    assert_eq!(again["status"], "deployed");
    assert_eq!(app.queue_depth().await, 0, "the entry is acknowledged");
    // The slot is free: the project builds again.
    let project = build["projectId"].as_str().unwrap();
    let next = app.submit(&build_body("u_fleet", project, site("next"))).await;
    assert_eq!(app.wait(&next).await["status"], "deployed");
}

#[tokio::test]
async fn a_build_whose_builders_keep_dying_fails_naming_how_often() {
    let app = spawn_app(Options {
        builders: 0,
        env: vec![("KILN_MAX_ATTEMPTS", "2".into())],
        ..Options::default()
    })
    .await;
    let q = queue(&app);
    let project = unique("doomed");
    let id = app.submit(&build_body("u_fleet", &project, site("doomed"))).await;
    let (job, _) = take_and_die(&app, &q, "dead-1").await;
    // A second daemon takes it over and dies too.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let taken = q
        .reclaim("dead-2", Duration::from_secs(1))
        .await
        .unwrap()
        .expect("reclaimable");
    assert_eq!(taken.entry_id, job.entry_id);
    match versions::take_over(&app.db, taken.build_id, "dead-2", 2)
        .await
        .unwrap()
    {
        versions::TakeOver::Running(v) => assert_eq!((v.attempts, v.lost), (2, 1)),
        other => panic!("not taken over: {other:?}"),
    }

    // The third daemon finds the build lost twice: it fails it, with its log and final event.
    let _live = app.start_builder("live", fast_lease);
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "failed", "{build}");
    assert_eq!(build["error"], "builder lost 2 times", "{build}");
    assert_eq!(build["failedStep"], "queue", "{build}");
    let types = event_types(&app, &id).await;
    assert_eq!(types.last().unwrap(), "build_failed", "{types:?}");
    let log = app
        .get(&format!("/v1/builds/{id}/logs"))
        .await
        .text()
        .await
        .unwrap();
    assert!(log.contains("builder lost 2 times"), "{log}");
    assert_eq!(app.queue_depth().await, 0);
    let next = app.submit(&build_body("u_fleet", &project, site("next"))).await;
    assert_eq!(app.wait(&next).await["status"], "deployed");
}

#[tokio::test]
async fn a_builder_that_died_after_recording_is_finished_for() {
    let app = spawn_app(Options::without_builders()).await;
    let q = queue(&app);
    let project = unique("half");
    let id = app.submit(&build_body("u_fleet", &project, site("half"))).await;
    let (job, attempt) = take_and_die(&app, &q, "dead").await;
    // It recorded the outcome, then died before its final event, the pointer and the release.
    let key = format!("manifests/{id}/output.json");
    record_deployed(&app, job.build_id, attempt, &key)
        .await
        .expect("recorded");

    let _live = app.start_builder("live", fast_lease);
    let types = event_types(&app, &id).await;
    assert_eq!(types.last().unwrap(), "deploy_completed", "{types:?}");
    let started = Instant::now();
    while app.queue_depth().await > 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "never acknowledged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pointer = q
        .latest(&job.user_id, &job.project_id)
        .await
        .unwrap()
        .expect("the latest pointer was written");
    assert_eq!(pointer.latest_version_id.to_string(), id);
    let build = app.get_json(&format!("/v1/builds/{id}")).await;
    assert_eq!(
        (build["status"].clone(), build["attempts"].clone()),
        (json!("deployed"), json!(1))
    );
    let next = app.submit(&build_body("u_fleet", &project, site("next"))).await;
    assert_eq!(app.wait(&next).await["status"], "deployed");
}

#[tokio::test]
async fn a_queued_build_cancelled_never_starts_and_frees_its_project() {
    let app = spawn_app(Options::without_builders()).await;
    let project = unique("cq");
    let id = app.submit(&build_body("u_fleet", &project, site("one"))).await;
    let (status, cancelled) = app
        .send_json("POST", &format!("/v1/builds/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    // Idempotent.
    let (status, again) = app
        .send_json("POST", &format!("/v1/builds/{id}/cancel"), &json!({}))
        .await;
    assert_eq!((status, again["status"].clone()), (200, json!("cancelled")));
    // The slot is free at once.
    let next = app.submit(&build_body("u_fleet", &project, site("two"))).await;

    let _builder = app.start_builder("b", |_| {});
    assert_eq!(app.wait(&next).await["status"], "deployed");
    let first = app.get_json(&format!("/v1/builds/{id}")).await;
    assert_eq!(first["status"], "cancelled", "{first}");
    assert_eq!(
        first["startedAt"],
        Value::Null,
        "a cancelled build never starts: {first}"
    );
    let events = app.get_json(&format!("/v1/builds/{id}/events")).await;
    let types: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["build_queued", "build_cancelled"]);

    // A finished build cannot be cancelled; an unknown one is a 404.
    let (status, body) = app
        .send_json("POST", &format!("/v1/builds/{next}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("already ended: it is deployed"),
        "{body}"
    );
    let (status, _) = app
        .send_json(
            "POST",
            &format!("/v1/builds/{}/cancel", VersionId::new()),
            &json!({}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn cancelling_a_running_build_stops_its_whole_process_tree() {
    let app = spawn_app(Options::without_builders()).await;
    let _builder = app.start_builder("b", |s| s.fleet.cancel_grace = Duration::from_secs(1));
    let marker = std::env::temp_dir().join(unique("kiln-cancelled"));
    // A background child that ignores SIGTERM would write the marker after 4 s: SIGKILL after
    // the grace period must take it too.
    let script = format!(
        "sh -c '(trap \"\" TERM; sleep 4; touch {}) & sleep 60'",
        marker.display()
    );
    let project = unique("cr");
    let id = app
        .submit(&build_body("u_fleet", &project, project_running(&script)))
        .await;
    // Wait until the build step runs.
    let started = Instant::now();
    loop {
        let b = app.get_json(&format!("/v1/builds/{id}")).await;
        if b["latestEvent"]["type"] == "build_step_started" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "never reached its build: {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = app
        .send_json("POST", &format!("/v1/builds/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(
        (status, body["status"].clone()),
        (200, json!("cancelled")),
        "{body}"
    );

    // The slot is free at once, and the daemon is free again soon after.
    let next = app.submit(&build_body("u_fleet", &project, site("after"))).await;
    assert_eq!(app.wait(&next).await["status"], "deployed");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!marker.exists(), "a process of the cancelled build outlived it");
    let build = app.get_json(&format!("/v1/builds/{id}")).await;
    assert_eq!(build["status"], "cancelled", "{build}");
    let log = app
        .get(&format!("/v1/builds/{id}/logs"))
        .await
        .text()
        .await
        .unwrap();
    assert!(log.contains("[kiln] stopping: SIGTERM"), "{log}");
}

#[tokio::test]
async fn a_failed_build_is_retried_with_its_sources() {
    let app = spawn_app(Options::default()).await;
    let project = unique("retry");
    let id = app
        .submit(&build_body("u_fleet", &project, project_running("exit 3")))
        .await;
    let failed = app.wait(&id).await;
    assert_eq!(failed["status"], "failed", "{failed}");

    let (status, queued) = app
        .send_json("POST", &format!("/v1/builds/{id}/retry"), &json!({}))
        .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["retryOf"], id.as_str());
    let retry = queued["buildId"].as_str().unwrap().to_owned();
    assert_ne!(retry, id);
    let done = app.wait(&retry).await;
    assert_eq!(done["retryOf"], id.as_str(), "{done}");
    assert_eq!(
        done["status"], "failed",
        "the same sources fail the same way: {done}"
    );
    let old = versions::get(&app.db, VersionId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let new = versions::get(&app.db, VersionId::parse(&retry).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.source_manifest, new.source_manifest);

    // Only failed or cancelled builds are retried.
    let ok = app.submit(&build_body("u_fleet", &project, site("fine"))).await;
    assert_eq!(app.wait(&ok).await["status"], "deployed");
    let (status, body) = app
        .send_json("POST", &format!("/v1/builds/{ok}/retry"), &json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = app
        .send_json(
            "POST",
            &format!("/v1/builds/{}/retry", VersionId::new()),
            &json!({}),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_draining_builder_hands_its_build_back_and_another_finishes_it() {
    let app = spawn_app(Options::without_builders()).await;
    let draining = app.start_builder("draining", |s| s.fleet.drain = Duration::from_secs(1));
    // A build of about 4 s: longer than the drain allows.
    let script = "node -e \"setTimeout(() => { require('fs').mkdirSync('dist'); require('fs').writeFileSync('dist/index.html', 'ok') }, 4000)\"";
    let id = app
        .submit(&build_body("u_fleet", &unique("drain"), project_running(script)))
        .await;
    app.wait_for_status(&id, "running").await;
    draining.shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(30), draining.task)
        .await
        .expect("the draining daemon exits after its deadline")
        .unwrap();
    assert!(stopped.is_ok(), "{stopped:?}");
    let back = app.get_json(&format!("/v1/builds/{id}")).await;
    assert_eq!(back["status"], "queued", "handed back, not failed: {back}");

    let _next = app.start_builder("next", |_| {});
    let done = app.wait(&id).await;
    assert_eq!(done["status"], "deployed", "{done}");
    assert_eq!(
        (done["attempts"].clone(), done["lostBuilders"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(done["builderId"], "next");
    let log = app
        .get(&format!("/v1/builds/{id}/logs"))
        .await
        .text()
        .await
        .unwrap();
    let handed = log
        .find("shutting down")
        .expect("the first attempt's lines are kept");
    let second = log.find("attempt 2 on next").expect("the second attempt says so");
    assert!(handed < second, "{log}");
}

#[tokio::test]
async fn a_newer_request_supersedes_a_queued_build_when_asked() {
    let app = spawn_app(Options::without_builders()).await;
    let project = unique("latest-wins");
    let first = app.submit(&build_body("u_fleet", &project, site("first"))).await;

    // By default a second request is refused, naming the first.
    let (status, body) = app
        .send_json(
            "POST",
            "/v1/builds",
            &build_body("u_fleet", &project, site("second")),
        )
        .await;
    assert_eq!((status, body["buildId"].clone()), (409, json!(first)), "{body}");
    let mut bad = build_body("u_fleet", &project, site("second"));
    bad["onConflict"] = json!("newest");
    let (status, body) = app.send_json("POST", "/v1/builds", &bad).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("onConflict must be"),
        "{body}"
    );

    let mut newer = build_body("u_fleet", &project, site("second"));
    newer["onConflict"] = json!("supersede");
    let (status, queued) = app.send_json("POST", "/v1/builds", &newer).await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(
        queued["replaced"],
        json!({ "buildId": first, "status": "superseded" })
    );
    let second = queued["buildId"].as_str().unwrap().to_owned();
    let old = app.get_json(&format!("/v1/builds/{first}")).await;
    assert_eq!(
        (old["status"].clone(), old["supersededBy"].clone()),
        (json!("superseded"), json!(second))
    );
    let events = app.get_json(&format!("/v1/builds/{first}/events")).await;
    assert_eq!(events["events"][1]["type"], "build_superseded", "{events}");

    let _builder = app.start_builder("b", |_| {});
    assert_eq!(app.wait(&second).await["status"], "deployed");
    let old = app.get_json(&format!("/v1/builds/{first}")).await;
    assert_eq!(
        (old["status"].clone(), old["startedAt"].clone()),
        (json!("superseded"), Value::Null)
    );
}

#[tokio::test]
async fn cancel_running_replaces_a_running_build_and_supersede_does_not() {
    let app = spawn_app(Options::without_builders()).await;
    let _builder = app.start_builder("b", |s| s.fleet.cancel_grace = Duration::from_secs(1));
    let project = unique("cancel-running");
    let slow = app
        .submit(&build_body("u_fleet", &project, project_running("sleep 60")))
        .await;
    app.wait_for_status(&slow, "running").await;

    let mut supersede = build_body("u_fleet", &project, site("newer"));
    supersede["onConflict"] = json!("supersede");
    let (status, body) = app.send_json("POST", "/v1/builds", &supersede).await;
    assert_eq!(
        (status, body["buildId"].clone()),
        (409, json!(slow)),
        "a running build is not superseded: {body}"
    );

    let mut cancel = build_body("u_fleet", &project, site("newer"));
    cancel["onConflict"] = json!("cancel-running");
    let (status, queued) = app.send_json("POST", "/v1/builds", &cancel).await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(
        queued["replaced"],
        json!({ "buildId": slow, "status": "cancelled" })
    );
    let newer = queued["buildId"].as_str().unwrap().to_owned();
    assert_eq!(app.wait(&newer).await["status"], "deployed");
    assert_eq!(
        app.get_json(&format!("/v1/builds/{slow}")).await["status"],
        "cancelled"
    );
}

/// Removes a build's stream entry (and, with `claim_too`, its project's claim), as a crash of
/// the API between its two writes, or a Redis that lost data, would leave things.
async fn lose_entry(app: &TestApp, id: &str, project: &str, claim_too: bool) {
    let (mut conn, keys) = app.redis().await;
    let range: redis::streams::StreamRangeReply = redis::AsyncCommands::xrange_all(&mut conn, keys.stream())
        .await
        .unwrap();
    let entry = range
        .ids
        .iter()
        .find(|e| e.get::<String>("build_id").as_deref() == Some(id))
        .expect("the build's entry");
    let _: i64 = redis::AsyncCommands::xdel(&mut conn, keys.stream(), &[&entry.id])
        .await
        .unwrap();
    if claim_too {
        let _: i64 = redis::AsyncCommands::del(&mut conn, keys.inflight("u_fleet", project))
            .await
            .unwrap();
    }
    // Older than the reconciler's minimum age, so it is not mistaken for an admission in flight.
    sqlx::query("update versions set created_at = now() - interval '2 minutes' where id = $1")
        .bind(id)
        .execute(&app.db)
        .await
        .unwrap();
}

#[tokio::test]
async fn queued_builds_that_lost_their_stream_entry_are_queued_again() {
    let app = spawn_app(Options::without_builders()).await;
    let (p1, p2, p3) = (unique("no-entry"), unique("no-entry-claim"), unique("replaced"));
    let a = app.submit(&build_body("u_fleet", &p1, site("a"))).await;
    lose_entry(&app, &a, &p1, true).await;
    let b = app.submit(&build_body("u_fleet", &p2, site("b"))).await;
    lose_entry(&app, &b, &p2, false).await;
    let c = app.submit(&build_body("u_fleet", &p3, site("c"))).await;
    lose_entry(&app, &c, &p3, true).await;
    // A newer build of p3 is admitted meanwhile (the client retried): it wins.
    let d = app.submit(&build_body("u_fleet", &p3, site("d"))).await;
    assert_eq!(app.queue_depth().await, 1);

    let _builder = app.start_builder("b", |s| s.fleet.reconcile_every = Duration::from_secs(1));
    for id in [&a, &b, &d] {
        assert_eq!(app.wait(id).await["status"], "deployed", "{id}");
    }
    let old = app.get_json(&format!("/v1/builds/{c}")).await;
    assert_eq!(
        (old["status"].clone(), old["supersededBy"].clone()),
        (json!("superseded"), json!(d)),
        "{old}"
    );
}

/// A running build whose stream entry (and so its claim) Redis lost: no daemon renews or
/// could reclaim it. The reconciler puts an entry back and a daemon takes the build over.
#[tokio::test]
async fn a_running_build_that_lost_its_claim_is_taken_over() {
    let app = spawn_app(Options::without_builders()).await;
    let project = unique("no-claim");
    let id = app.submit(&build_body("u_fleet", &project, site("a"))).await;
    lose_entry(&app, &id, &project, false).await;
    // Its daemon started it five minutes ago, then Redis lost the entry and the daemon died.
    sqlx::query(
        "update versions set status = 'running', attempts = 1, builder_id = 'gone',
             started_at = now() - interval '5 minutes' where id = $1",
    )
    .bind(&id)
    .execute(&app.db)
    .await
    .unwrap();

    let _builder = app.start_builder("b", |s| s.fleet.reconcile_every = Duration::from_secs(1));
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(
        (build["attempts"].clone(), build["lostBuilders"].clone()),
        (json!(2), json!(1)),
        "taken over as a new attempt, the lost one counted: {build}"
    );
}

#[tokio::test]
async fn the_fleet_view_shows_live_builders_what_they_run_and_their_uptime() {
    let app = spawn_app(Options::without_builders()).await;
    let one = app.start_builder("fleet-one", |_| {});
    let two = app.start_builder("fleet-two", |_| {});
    let slow = app
        .submit(&build_body(
            "u_fleet",
            &unique("view"),
            project_running("sleep 30"),
        ))
        .await;
    app.wait_for_status(&slow, "running").await;
    let started = Instant::now();
    let fleet = loop {
        let fleet = app.get_json("/v1/builders").await;
        let running = fleet["running"].as_u64().unwrap_or_default();
        // The store's size is reported once its first measurement (a walk of the store on a
        // blocking thread) is done, which may come after the first heartbeats.
        let measured = fleet["builders"]
            .as_array()
            .is_some_and(|b| b.iter().all(|b| b["storeBytes"].is_u64()));
        if fleet["builders"].as_array().map(Vec::len) == Some(2) && running == 1 && measured {
            break fleet;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{fleet}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(fleet["slots"], 2, "{fleet}");
    let builders = fleet["builders"].as_array().unwrap();
    assert_eq!(builders[0]["id"], "fleet-one");
    assert_eq!(builders[1]["id"], "fleet-two");
    let busy = builders
        .iter()
        .find(|b| b["running"].as_array().unwrap().len() == 1)
        .expect("one builder runs the build");
    assert_eq!(busy["running"][0]["buildId"], slow.as_str(), "{busy}");
    assert!(busy["running"][0]["lastEvent"].is_string(), "{busy}");
    for b in builders {
        assert_eq!(b["capacity"], 1, "{b}");
        assert!(b["host"].as_str().is_some_and(|h| !h.is_empty()), "{b}");
        assert!(b["version"].is_string() && b["startedAt"].is_string(), "{b}");
        assert!(b["lastSeenMsAgo"].as_i64().unwrap() < 15_000, "{b}");
        assert!(b["storeBytes"].is_u64(), "the pnpm store's size: {b}");
    }
    let history = app.get_json("/v1/builders/history?builderId=fleet-one").await;
    let intervals = history["intervals"].as_array().unwrap();
    assert_eq!(intervals.len(), 1, "{history}");
    assert_eq!(intervals[0]["builderId"], "fleet-one");

    // A builder that stops leaves the fleet view; the build it ran is cancelled first so
    // that it need not drain.
    let (status, _) = app
        .send_json("POST", &format!("/v1/builds/{slow}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let idle = if busy["id"] == "fleet-one" { two } else { one };
    idle.shutdown.cancel();
    idle.task.await.unwrap().unwrap();
    let fleet = app.get_json("/v1/builders").await;
    assert_eq!(fleet["builders"].as_array().unwrap().len(), 1, "{fleet}");
    let (status, body) = app
        .send_json("GET", "/v1/builders/history?limit=0", &json!(null))
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_users_running_builds_never_pass_the_fleet_wide_cap() {
    let app = spawn_app(Options::without_builders()).await;
    // Two daemons of two slots each, and at most one running build per user.
    let capped = |s: &mut kiln_shared::config::Settings| {
        s.builder.concurrency = 2;
        s.fleet.max_running_per_user = Some(1);
    };
    let _one = app.start_builder("cap-one", capped);
    let _two = app.start_builder("cap-two", capped);
    let script = "node -e \"setTimeout(() => { require('fs').mkdirSync('dist'); require('fs').writeFileSync('dist/index.html', 'ok') }, 1000)\"";
    let mut burst = Vec::new();
    for _ in 0..3 {
        let project = unique("burst");
        burst.push(
            app.submit(&build_body("u_burst", &project, project_running(script)))
                .await,
        );
    }
    let other = app
        .submit(&build_body("u_other", &unique("calm"), project_running(script)))
        .await;

    let span = |b: &Value| {
        let at = |field: &str| {
            chrono::DateTime::parse_from_rfc3339(b[field].as_str().unwrap_or_else(|| panic!("{field}: {b}")))
                .unwrap()
        };
        (at("startedAt"), at("finishedAt"))
    };
    let mut spans = Vec::new();
    for id in &burst {
        let b = app.wait(id).await;
        assert_eq!(b["status"], "deployed", "{b}");
        spans.push(span(&b));
    }
    let calm = app.wait(&other).await;
    assert_eq!(calm["status"], "deployed", "{calm}");
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "two builds of one user ran at once across the fleet: {spans:?}"
        );
    }
    // The other user's build did not wait behind the burst.
    let (calm_start, _) = span(&calm);
    assert!(
        calm_start < spans[2].0,
        "the other user's build started only after the burst's last one: {calm_start} vs {spans:?}"
    );
    // Every slot is free again (a daemon frees it just after recording the outcome).
    let (mut redis, keys) = app.redis().await;
    let started = Instant::now();
    loop {
        let held: i64 = redis::AsyncCommands::zcard(&mut redis, keys.running_of("u_burst"))
            .await
            .unwrap();
        if held == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{held} slots still held"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Breaks the filesystem artifact store's blob folder (a file where the folder should be), as
/// a full or failing disk would: every blob write fails. Returns a function that repairs it.
fn break_blob_store(app: &TestApp) -> impl FnOnce() {
    let root = app.artifacts_dir.clone().expect("a filesystem store");
    std::fs::create_dir_all(&root).unwrap();
    let blobs = root.join("blobs");
    let away = root.join("blobs.away");
    if blobs.exists() {
        std::fs::rename(&blobs, &away).unwrap();
    }
    std::fs::write(&blobs, b"not a folder").unwrap();
    move || {
        std::fs::remove_file(&blobs).unwrap();
        if away.exists() {
            std::fs::rename(&away, &blobs).unwrap();
        }
    }
}

async fn events_of(app: &TestApp, id: &str) -> Vec<Value> {
    app.get_json(&format!("/v1/builds/{id}/events?limit=1000")).await["events"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn an_infrastructure_error_sends_the_build_back_to_the_queue_after_a_backoff() {
    let app = spawn_app(Options {
        env: vec![("KILN_MAX_ATTEMPTS", "3".into())],
        ..Options::default()
    })
    .await;
    // Small sources stay inline in the manifest, so admission writes no blob: only the build's
    // upload meets the broken store.
    let repair = break_blob_store(&app);
    let id = app
        .submit(&build_body("u_infra", &unique("retry"), site("retried")))
        .await;
    let started = Instant::now();
    let retrying = loop {
        let events = events_of(&app, &id).await;
        if let Some(e) = events.iter().find(|e| e["type"] == "build_retrying") {
            break e.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{events:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    repair();
    let data = &retrying["data"];
    assert_eq!(data["step"], "upload", "{retrying}");
    assert_eq!(
        (data["attempt"].as_i64(), data["maxAttempts"].as_i64()),
        (Some(1), Some(3))
    );
    assert_eq!(data["retryInMs"], 1000, "{retrying}");
    assert!(
        data["reason"].as_str().unwrap().contains("artifact store"),
        "{retrying}"
    );

    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    assert_eq!(build["attempts"], 2, "{build}");
    assert_eq!(build["lostBuilders"], 0, "a retry is not a lost builder: {build}");
    let page = app.preview(&id, "/").await.text().await.unwrap();
    assert_eq!(page, "<h1>retried</h1>");
    let log = app
        .get(&format!("/v1/builds/{id}/logs"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        log.contains("infrastructure error at the upload step (attempt 1 of 3)"),
        "{log}"
    );
    // The second attempt began after the backoff.
    let events = app.final_events(&id).await;
    let at = |kind: &str, nth: usize| {
        let e = events.iter().filter(|e| e["type"] == kind).nth(nth).unwrap();
        chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).unwrap()
    };
    let waited = at("build_started", 1) - at("build_retrying", 0);
    assert!(waited >= chrono::Duration::milliseconds(950), "{waited}");
}

#[tokio::test]
async fn an_infrastructure_error_on_the_last_attempt_fails_the_build_saying_so() {
    let app = spawn_app(Options {
        env: vec![("KILN_MAX_ATTEMPTS", "2".into())],
        ..Options::default()
    })
    .await;
    let repair = break_blob_store(&app);
    let id = app
        .submit(&build_body("u_infra", &unique("broken"), site("never")))
        .await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "failed", "{build}");
    assert_eq!(build["failedStep"], "upload", "{build}");
    assert_eq!(build["attempts"], 2, "{build}");
    let error = build["error"].as_str().unwrap();
    assert!(
        error.starts_with("infrastructure error on the last attempt (2 of 2): "),
        "{error}"
    );
    let events = app.final_events(&id).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "build_retrying").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"build_failed"));

    // A user error is not retried: a build script that fails ends the build at once.
    repair();
    let id = app
        .submit(&build_body("u_infra", &unique("user"), project_running("exit 7")))
        .await;
    let build = app.wait(&id).await;
    assert_eq!(
        (build["status"].as_str(), build["attempts"].as_i64()),
        (Some("failed"), Some(1))
    );
    assert_eq!(build["failedStep"], "build", "{build}");
}

/// `kiln-builder maintain` on a host with a real daemon: while it runs, the daemon claims no
/// new build; it waits for the build running to end before it touches the store; afterwards
/// the waiting build runs.
#[tokio::test]
async fn the_hosts_upkeep_pauses_claims_and_waits_for_the_running_build() {
    let app = spawn_app(Options::without_builders()).await;
    // Two workers: one runs the first build, the other is free to claim (but for the pause).
    let _builder = app.start_builder("upkeep-host", |s| s.builder.concurrency = 2);
    let running = app
        .submit(&build_body(
            "u_fleet",
            &unique("before"),
            project_running("sleep 3 && mkdir dist && cp index.html dist/"),
        ))
        .await;
    app.wait_for_status(&running, "running").await;

    let upkeep = kiln_builder::upkeep::Upkeep {
        work_dir: app.settings.builder.work_dir.clone(),
        pnpm_store: app.settings.builder.pnpm_store.clone(),
        store_max: 1 << 40,
        wait: Duration::from_secs(120),
        store_user: Some(app.settings.sandbox.store_user),
    };
    let started = Instant::now();
    let run = tokio::task::spawn_blocking(move || upkeep.run());
    // The pause is taken at once; a build submitted now waits for the upkeep to end.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = app
        .submit(&build_body("u_fleet", &unique("during"), site("during")))
        .await;
    while !run.is_finished() {
        let build = app.get_json(&format!("/v1/builds/{waiting}")).await;
        assert_eq!(build["status"], "queued", "claimed during the upkeep: {build}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = run.await.unwrap().expect("the upkeep ran");
    assert!(
        report.waited_ms >= 1500,
        "it waited for the running build: {report:?} after {:?}",
        started.elapsed()
    );
    assert!(report.pruned, "{report:?}");
    let first = app.get_json(&format!("/v1/builds/{running}")).await;
    assert_eq!(
        first["status"], "deployed",
        "ended before the upkeep worked: {first}"
    );
    assert_eq!(app.wait(&waiting).await["status"], "deployed");
}
