//! A table of cases and what each must get: its status, a problem (`application/problem+json`)
//! whose `error` says what is wrong; what
//! a refused request must not have changed ([`Stored`]); and the service still healthy after.

use serde_json::{json, Value};

use super::wire::{build, http, raw, send, Send};
use crate::helpers::{build_body, unique, TestApp};

pub(super) struct Case {
    pub(super) name: String,
    pub(super) send: Send,
    pub(super) status: u16,
    /// What the `error` message must contain.
    pub(super) says: String,
}

pub(super) fn case(name: impl Into<String>, send: Send, status: u16, says: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        send,
        status,
        says: says.into(),
    }
}

/// Sends every case and checks it was refused as it says; returns how many there were.
pub(super) async fn refuse_all(app: &TestApp, group: &str, cases: &[Case]) -> usize {
    let mut wrong = Vec::new();
    for c in cases {
        if let Err(e) = refused(app, c).await {
            wrong.push(format!("{group}: {}: {e}", c.name));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    eprintln!("hostile {group}: {} cases, all refused", cases.len());
    cases.len()
}

/// Whether a case was refused with its status, as a problem, saying what it must.
async fn refused(app: &TestApp, c: &Case) -> Result<(), String> {
    let answer = send(&app.api, &c.send).await;
    if answer.status != c.status {
        return Err(format!(
            "{} instead of {}: {}",
            answer.status,
            c.status,
            answer.text()
        ));
    }
    if !answer
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/problem+json"))
    {
        return Err(format!("not a problem: {:?} {}", answer.headers, answer.text()));
    }
    let json: Value =
        serde_json::from_slice(&answer.body).map_err(|e| format!("not JSON ({e}): {}", answer.text()))?;
    let error = json["error"]
        .as_str()
        .ok_or_else(|| format!("no error in {json}"))?;
    if !error.contains(&c.says) {
        return Err(format!("{error:?} does not say {:?}", c.says));
    }
    Ok(())
}

/// What a refused request must not have changed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Stored {
    versions: i64,
    queued: u64,
    blobs: usize,
    tokens: i64,
    live_tokens: i64,
    webhooks: i64,
    pinned: i64,
    statuses: Vec<(String, String)>,
    latest: Vec<String>,
}

pub(super) async fn stored(app: &TestApp) -> Stored {
    let count = |sql: &'static str| {
        let db = app.db.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&db).await.unwrap() }
    };
    let statuses: Vec<(String, String)> = sqlx::query_as("select id, status from versions order by id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    let (mut redis, keys) = app.redis().await;
    let pattern = keys.latest("*", "*");
    let mut latest: Vec<String> = redis::AsyncCommands::keys(&mut redis, pattern).await.unwrap();
    let mut pointers = Vec::new();
    latest.sort();
    for key in &latest {
        let value: String = redis::AsyncCommands::get(&mut redis, key).await.unwrap();
        let id = serde_json::from_str::<Value>(&value).unwrap()["latestVersionId"].to_string();
        pointers.push(format!("{key}={id}"));
    }
    Stored {
        versions: app.version_count().await,
        queued: app.queue_depth().await,
        blobs: app.blob_count(),
        tokens: count("select count(*) from user_tokens").await,
        live_tokens: count("select count(*) from user_tokens where revoked_at is null").await,
        webhooks: count("select count(*) from webhooks").await,
        pinned: count("select count(*) from versions where pinned").await,
        statuses,
        latest: pointers,
    }
}

/// `/healthz` answers, and so does an ordinary request that stores something.
pub(super) async fn assert_healthy(app: &TestApp) {
    let health = raw(&app.api, &http("GET", "/healthz", &[], b"")).await;
    assert_eq!(health.status, 200, "{}", health.text());
    let body = build_body(
        "u_healthy",
        &unique("after"),
        json!([{ "path": "index.html", "content": "<h1>still here</h1>" }]),
    );
    let answer = send(&app.api, &build(body)).await;
    assert_eq!(answer.status, 202, "{}", answer.text());
}
