//! Projects listed and removed: the listing newest activity first with a cursor, a project's
//! deletion (rows, keys, logs gone; its blobs collected by a real maintenance run while another
//! user's identical file keeps its blob), a running build cancelled by it, and a user's deletion
//! followed to done, also when the instance doing it died half-way.

use std::time::Duration;

use kiln_ops::{maintain, Farm, Outcome};
use kiln_shared::backends::{Backends, Role};
use kiln_shared::store::{sha256_hex, BlobPlace, Encoding, FsStore};
use kiln_testkit::poll::{self, Look};
use serde_json::{json, Value};

use crate::helpers::{build_body, spawn_app, unique, Options, TestApp};

/// A request with `token` as the bearer token: (status, JSON body or null).
async fn call(app: &TestApp, token: &str, method: &str, path: &str) -> (u16, Value) {
    let res = app
        .client
        .request(method.parse().unwrap(), format!("{}{path}", app.api))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    kiln_testkit::answer::json(res).await.unwrap()
}

/// A DELETE signed as the back end: (status, JSON body or null).
async fn delete(app: &TestApp, path: &str) -> (u16, Value) {
    kiln_testkit::answer::json(app.signed("DELETE", path, b"").await)
        .await
        .unwrap()
}

async fn user_token(app: &TestApp, user: &str) -> String {
    let (status, body) = app
        .send_json("POST", "/v1/tokens", &json!({ "userId": user }))
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

fn names(page: &Value) -> Vec<String> {
    page["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["userId"].as_str().unwrap(),
                p["projectId"].as_str().unwrap()
            )
        })
        .collect()
}

/// A file large enough to be stored as a blob of its own (not inline in a manifest).
fn big(seed: &str) -> String {
    format!("/* {seed} */\n{}", "console.log('kiln');\n".repeat(200))
}

fn site(index: &str, common: &str) -> Value {
    json!([
        { "path": "index.html", "content": index },
        { "path": "common.js", "content": common },
    ])
}

async fn deploy(app: &TestApp, body: &Value) -> String {
    let id = app.submit(body).await;
    let build = app.wait(&id).await;
    assert_eq!(build["status"], "deployed", "{build}");
    id
}

async fn count(app: &TestApp, sql: &str, ids: &[String]) -> i64 {
    sqlx::query_scalar(sql)
        .bind(ids)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// One maintenance run over the app's farm with no grace period (everything unreferenced is old
/// enough to collect).
async fn maintenance(app: &TestApp) -> kiln_ops::Report {
    let mut settings = app.settings.clone();
    settings.maintenance.gc_grace = Duration::ZERO;
    let b = Backends::connect(&settings, Role::Maintenance).await.unwrap();
    let farm = Farm {
        db: b.db,
        queue: b.queue,
        artifacts: b.artifacts,
        urls: b.urls,
        settings: settings.maintenance.clone(),
        lease: settings.fleet.lease,
    };
    match maintain(&farm, "lifecycle-test", false).await.unwrap() {
        Outcome::Ran(report) => *report,
        Outcome::Busy { holder, .. } => panic!("busy: {holder}"),
    }
}

fn blob_at(app: &TestApp, place: BlobPlace, content: &str) -> bool {
    let store = FsStore::new(app.artifacts_dir.clone().unwrap());
    [Encoding::Identity, Encoding::Gzip].iter().any(|e| {
        store
            .path_of(&place.key(&sha256_hex(content.as_bytes()), *e))
            .exists()
    })
}

#[tokio::test]
async fn projects_are_listed_newest_activity_first_with_a_cursor_and_a_user_sees_its_own() {
    let app = spawn_app(Options::without_builders()).await;
    let (a1, b1, a2, b2) = (unique("a1"), unique("b1"), unique("a2"), unique("b2"));
    let mut first_build = String::new();
    for (user, project) in [("u_la", &a1), ("u_lb", &b1), ("u_la", &a2), ("u_lb", &b2)] {
        let id = app
            .submit(&build_body(user, project, site("<h1>x</h1>", "x")))
            .await;
        if project == &a1 {
            first_build = id;
        }
    }
    let page = app.get_json("/v1/projects?limit=3").await;
    assert_eq!(
        names(&page),
        [format!("u_lb/{b2}"), format!("u_la/{a2}"), format!("u_lb/{b1}")],
        "{page}"
    );
    let p = &page["projects"][0];
    assert_eq!(
        (
            p["versions"].clone(),
            p["latestVersionId"].clone(),
            p["latestUrl"].clone()
        ),
        (json!(1), Value::Null, Value::Null),
        "{p}"
    );
    assert_eq!(p["lastBuild"]["status"], "queued", "{p}");
    let cursor = page["nextCursor"].as_str().unwrap().to_owned();
    let rest = app
        .get_json(&format!("/v1/projects?limit=3&before={cursor}"))
        .await;
    assert_eq!(names(&rest), [format!("u_la/{a1}")], "{rest}");
    assert_eq!(rest["nextCursor"], Value::Null);
    assert_eq!(rest["projects"][0]["lastBuild"]["id"], first_build.as_str());

    // New activity moves a project to the front: a1's build cancelled and requested again.
    let (status, _) = app
        .send_json("POST", &format!("/v1/builds/{first_build}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 200);
    let again = app
        .submit(&build_body("u_la", &a1, site("<h1>y</h1>", "y")))
        .await;
    let page = app.get_json("/v1/projects?userId=u_la").await;
    assert_eq!(
        names(&page),
        [format!("u_la/{a1}"), format!("u_la/{a2}")],
        "{page}"
    );
    let p = &page["projects"][0];
    assert_eq!(
        (p["versions"].clone(), p["lastBuild"]["id"].clone()),
        (json!(2), json!(again)),
        "{p}"
    );

    // A user token: its own user's projects, whether it names the user or not; another is a 404.
    let token = user_token(&app, "u_lb").await;
    for path in ["/v1/projects", "/v1/projects?userId=u_lb"] {
        let (status, own) = call(&app, &token, "GET", path).await;
        assert_eq!(status, 200, "{own}");
        assert_eq!(
            names(&own),
            [format!("u_lb/{b2}"), format!("u_lb/{b1}")],
            "{path}"
        );
    }
    let (status, other) = call(&app, &token, "GET", "/v1/projects?userId=u_la").await;
    assert_eq!(status, 404, "{other}");
}

#[tokio::test]
async fn a_deleted_project_is_gone_everywhere_and_maintenance_collects_its_blobs_but_not_shared_ones() {
    let app = spawn_app(Options::default()).await;
    // Deliveries are recorded for every build (the URL answers nothing: they just wait).
    let (status, hook) = app
        .send_json(
            "POST",
            "/v1/webhooks",
            &json!({ "url": "http://127.0.0.1:9/hook" }),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    let (user, project) = ("u_del", unique("gone"));
    let (own, shared) = (big("only in the deleted project"), big("in both projects"));
    let v1 = deploy(&app, &build_body(user, &project, site("<h1>one</h1>", &shared))).await;
    let change =
        json!({ "userId": user, "projectId": project, "files": [{ "path": "own.js", "content": own }] });
    let v2 = deploy(&app, &change).await;
    let keeper = unique("kept");
    let kept = deploy(
        &app,
        &build_body("u_keep", &keeper, site("<h1>kept</h1>", &shared)),
    )
    .await;
    let ids = vec![v1.clone(), v2.clone()];
    app.final_events(&v2).await;
    assert!(
        count(
            &app,
            "select count(*) from webhook_deliveries where build_id = any($1)",
            &ids
        )
        .await
            > 0
    );
    let latest_url = app.get_json(&format!("/v1/builds/{v2}")).await["latestUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let label = latest_url
        .trim_start_matches("http://")
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(app.preview(&label, "/").await.status(), 200);
    assert_eq!(app.preview(&v2, "/").await.status(), 200);

    // A user token cannot delete, not even its own user's project: the route does not exist for it.
    let token = user_token(&app, user).await;
    let path = format!("/v1/projects/{user}/{project}");
    let (status, body) = call(&app, &token, "DELETE", &path).await;
    assert_eq!(status, 404, "{body}");

    let (status, body) = delete(&app, &path).await;
    assert_eq!(status, 202, "{body}");
    let deleted = &body["deleted"];
    assert_eq!(body["status"], "deleted");
    assert_eq!(
        (
            deleted["versions"].clone(),
            deleted["logs"].clone(),
            deleted["cancelled"].clone()
        ),
        (json!(2), json!(2), json!([])),
        "{body}"
    );
    assert!(deleted["events"].as_u64().unwrap() >= 10, "{body}");
    assert!(deleted["deliveries"].as_u64().unwrap() >= 10, "{body}");

    // Its builds, rows, keys, logs and previews are gone; the other project is untouched.
    for id in &ids {
        let res = app.get(&format!("/v1/builds/{id}")).await;
        assert_eq!(res.status(), 404, "{id}");
        let dir = app.artifacts_dir.as_ref().unwrap();
        assert!(!dir.join(format!("logs/{id}.log")).exists(), "{id}");
        assert!(
            !dir.join(format!("manifests/{id}"))
                .read_dir()
                .is_ok_and(|mut d| d.next().is_some()),
            "{id}"
        );
    }
    // The latest URL (served before) and the version URL never served (no instance remembers
    // its manifest) answer 404. The newest version's URL was served (here and through the latest
    // URL), so this instance remembers its manifest: the preview gate (no `projects` row) makes
    // it a 404 all the same.
    assert_eq!(app.preview(&label, "/").await.status(), 404);
    assert_eq!(app.preview(&v1, "/").await.status(), 404);
    assert_eq!(app.preview(&v2, "/").await.status(), 404);
    for table in [
        "versions where id",
        "build_events where build_id",
        "webhook_deliveries where build_id",
    ] {
        let sql = format!("select count(*) from {table} = any($1)");
        assert_eq!(count(&app, &sql, &ids).await, 0, "{table}");
    }
    let rows: i64 = sqlx::query_scalar("select count(*) from projects where user_id = $1")
        .bind(user)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    let (mut redis, keys) = app.redis().await;
    for key in [
        keys.latest(user, &project),
        keys.label(&label),
        keys.inflight(user, &project),
    ] {
        let exists: bool = redis::AsyncCommands::exists(&mut redis, &key).await.unwrap();
        assert!(!exists, "{key}");
    }
    let (status, again) = delete(&app, &path).await;
    assert_eq!(status, 404, "{again}");
    assert_eq!(
        app.get_json(&format!("/v1/builds/{kept}")).await["status"],
        "deployed"
    );

    // Maintenance: the deleted project's own blob goes to the trash and is counted; the file
    // the other project has too keeps its blob.
    assert!(blob_at(&app, BlobPlace::Hot, &own) && blob_at(&app, BlobPlace::Hot, &shared));
    let report = maintenance(&app).await;
    assert!(report.blobs.trashed >= 1, "{:?}", report.blobs);
    assert!(blob_at(&app, BlobPlace::Trash, &own), "{:?}", report.blobs);
    assert!(!blob_at(&app, BlobPlace::Hot, &own));
    assert!(blob_at(&app, BlobPlace::Hot, &shared), "{:?}", report.blobs);
    assert_eq!(
        report.blobs.verify.missing_count + report.blobs.verify.corrupt_count,
        0,
        "{:?}",
        report.blobs
    );
    let kept_label = app.get_json(&format!("/v1/builds/{kept}")).await["latestUrl"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let res = app.preview(&kept_label, "/common.js").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), shared);
}

#[tokio::test]
async fn deleting_a_project_cancels_its_running_build_and_its_builder_stops_it() {
    let app = spawn_app(Options::without_builders()).await;
    let _builder = app.start_builder("b", |s| s.fleet.cancel_grace = Duration::from_secs(1));
    let marker = std::env::temp_dir().join(unique("kiln-deleted"));
    let script = format!("sh -c '(sleep 6; touch {}) & sleep 60'", marker.display());
    let project = unique("running");
    let files = json!([
        { "path": "package.json", "content": json!({ "name": "p", "private": true, "scripts": { "build": script } }).to_string() },
        { "path": "index.html", "content": "<h1>x</h1>" },
    ]);
    let id = app.submit(&build_body("u_run", &project, files)).await;
    poll::until(Duration::from_millis(50), Duration::from_secs(120), || async {
        let b = app.get_json(&format!("/v1/builds/{id}")).await;
        if b["latestEvent"]["type"] == "build_step_started" {
            Look::Ready(())
        } else {
            Look::Seen(b)
        }
    })
    .await
    .unwrap_or_else(|t| panic!("never reached its build: {}", t.last));

    let res = app
        .signed("DELETE", &format!("/v1/projects/u_run/{project}"), b"")
        .await;
    let (status, body) = kiln_testkit::answer::json(res).await.unwrap();
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["deleted"]["cancelled"], json!([id]), "{body}");
    assert_eq!(app.get(&format!("/v1/builds/{id}")).await.status(), 404);
    // The only daemon is free again at once (its build was stopped, not left running its 60 s),
    // and nothing of the stopped build survives.
    let next = app
        .submit(&build_body("u_run", &unique("next"), site("<h1>n</h1>", "n")))
        .await;
    assert_eq!(app.wait(&next).await["status"], "deployed");
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        !marker.exists(),
        "a process of the deleted project's build outlived it"
    );
    let left: i64 = sqlx::query_scalar("select count(*) from versions where project_id = $1")
        .bind(&project)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(left, 0);
}

async fn wait_done(app: &TestApp, status_url: &str) -> Value {
    poll::until(Duration::from_millis(100), Duration::from_secs(60), || async {
        let d = app.get_json(status_url).await;
        if d["status"] == "done" {
            Look::Ready(d)
        } else {
            Look::Seen(d)
        }
    })
    .await
    .unwrap_or_else(|t| panic!("the deletion never finished: {}", t.last))
}

async fn projects_of(app: &TestApp, user: &str) -> (i64, i64) {
    sqlx::query_as(
        "select (select count(*) from projects where user_id = $1),
                (select count(*) from versions where user_id = $1)",
    )
    .bind(user)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_users_deletion_removes_every_project_of_the_user_and_no_one_elses() {
    let app = spawn_app(Options::without_builders()).await;
    for (user, project) in [
        ("u_gone", unique("one")),
        ("u_gone", unique("two")),
        ("u_stays", unique("three")),
    ] {
        app.submit(&build_body(user, &project, site("<h1>x</h1>", "x")))
            .await;
    }
    let token = user_token(&app, "u_gone").await;
    let (status, body) = call(&app, &token, "DELETE", "/v1/users/u_gone").await;
    assert_eq!(status, 404, "a user token cannot delete: {body}");

    let (status, started) = delete(&app, "/v1/users/u_gone").await;
    assert_eq!(status, 202, "{started}");
    let id = started["deletionId"].as_str().unwrap();
    assert!(id.starts_with("del_"), "{started}");
    assert_eq!(started["statusUrl"], format!("/v1/deletions/{id}"));
    let done = wait_done(&app, &format!("/v1/deletions/{id}")).await;
    assert_eq!(
        (done["projectsTotal"].clone(), done["projectsDeleted"].clone()),
        (json!(2), json!(2)),
        "{done}"
    );
    assert!(done["finishedAt"].is_string(), "{done}");
    assert_eq!(projects_of(&app, "u_gone").await, (0, 0));
    assert_eq!(projects_of(&app, "u_stays").await, (1, 1));
    let (status, page) = (200, app.get_json("/v1/projects?userId=u_gone").await);
    assert_eq!((status, page["projects"].clone()), (200, json!([])));

    // Nothing left: a second deletion is a 404; the status stays readable (not to a user token).
    let (status, again) = delete(&app, "/v1/users/u_gone").await;
    assert_eq!(status, 404, "{again}");
    let (status, _) = call(&app, &token, "GET", &format!("/v1/deletions/{id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_deletion_left_by_a_dead_instance_is_finished_once_its_lease_expires() {
    let app = spawn_app(Options::without_builders()).await;
    for project in [unique("one"), unique("two")] {
        app.submit(&build_body("u_dead", &project, site("<h1>x</h1>", "x")))
            .await;
    }
    // An instance took the deletion and died: its lease runs for another hour.
    let id = format!("del_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    sqlx::query(
        "insert into deletions (id, user_id, status, projects_total, lease_owner, lease_until, started_at)
         values ($1, 'u_dead', 'running', 2, 'api-dead', now() + interval '1 hour', now())",
    )
    .bind(&id)
    .execute(&app.db)
    .await
    .unwrap();
    // Asked again meanwhile: the same deletion, not a new one.
    let (status, body) = delete(&app, "/v1/users/u_dead").await;
    assert_eq!(
        (status, body["deletionId"].as_str()),
        (202, Some(id.as_str())),
        "{body}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        projects_of(&app, "u_dead").await,
        (2, 2),
        "a held deletion is left to its holder"
    );

    // The lease expires: this instance's poller takes it over and finishes it.
    sqlx::query("update deletions set lease_until = now() - interval '1 second' where id = $1")
        .bind(&id)
        .execute(&app.db)
        .await
        .unwrap();
    let done = wait_done(&app, &format!("/v1/deletions/{id}")).await;
    assert_eq!(done["projectsDeleted"], 2, "{done}");
    assert_eq!(projects_of(&app, "u_dead").await, (0, 0));
}
