//! The invariants, checked from what Kiln recorded: the `versions` rows and `build_events` in
//! Postgres, the stream, slots and latest pointers in Redis, and the files in the artifact store.
//!
//! - Terminal: every accepted build ends `deployed`, `failed`, `cancelled` or `superseded`; a
//!   build still queued or running once the farm has settled, or with no row, is *lost*. So is
//!   a build refused with 503 whose row is not terminal.
//! - No duplicates: one row per request (rows are matched to requests by the token in their
//!   sources), at most one `deploy_completed` per build, and no row nobody asked for.
//! - Complete files: every deployed version's output manifest lists exactly the files its build
//!   wrote, every blob is in the store with the size and SHA-256 the manifest says, its
//!   index.html names its request's token, and its builder.txt names the daemon the row says
//!   built it (a late writer cannot have replaced the recorded result).
//! - One running build per project: sampled from Postgres every 100 ms while the scenario runs
//!   ([`Sampler`]): a sample with two `running` rows of one project is a violation.
//! - Settled queue: the stream is empty with nothing pending, no project slot is still held, and
//!   each project's latest pointer names its newest deployed version.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kiln_shared::store::encoding::decode_blocking;
use kiln_shared::store::{sha256_hex, Artifacts, FsStore, Manifest};
use redis::AsyncCommands;
use sqlx::Row;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::farm::Farm;
use crate::load::Ledger;

const TERMINAL: &[&str] = &["deployed", "failed", "cancelled", "superseded"];
const FINAL_EVENTS: &[&str] = &[
    "deploy_completed",
    "build_failed",
    "build_cancelled",
    "build_superseded",
];

/// What a scenario's builds came to.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Accepted builds.
    pub builds: usize,
    pub statuses: BTreeMap<String, usize>,
    /// Attempts whose builder was lost (`versions.lost`, summed).
    pub reclaims: i64,
    pub duplicates: usize,
    pub lost: usize,
    pub violations: Vec<String>,
    pub notes: Vec<String>,
}

/// What the scenario allows besides `deployed` and `superseded`.
#[derive(Debug, Default, Clone)]
pub struct Expect {
    /// Builds the scenario cancelled.
    pub cancelled: HashSet<String>,
}

/// Samples Postgres every 100 ms for projects with two running builds.
pub struct Sampler {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Samples>,
}

#[derive(Debug, Default)]
pub struct Samples {
    pub taken: u64,
    /// Samples that could not be taken (Postgres down).
    pub missed: u64,
    pub overlaps: BTreeSet<String>,
}

impl Sampler {
    pub fn start(farm: Arc<Farm>) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Samples::default();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    () = token.cancelled() => return samples,
                    _ = tick.tick() => {}
                }
                farm.note_exits();
                let rows = sqlx::query(
                    "select user_id, project_id, string_agg(id, ', ' order by id) as ids
                     from versions where status = 'running'
                     group by user_id, project_id having count(*) > 1",
                )
                .fetch_all(&farm.db)
                .await;
                match rows {
                    Ok(rows) => {
                        samples.taken += 1;
                        for r in rows {
                            let (u, p, ids): (String, String, String) =
                                (r.get("user_id"), r.get("project_id"), r.get("ids"));
                            samples
                                .overlaps
                                .insert(format!("project {u}/{p} had builds {ids} running at once"));
                        }
                    }
                    Err(_) => samples.missed += 1,
                }
            }
        });
        Self { stop, task }
    }

    pub async fn finish(self) -> Samples {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

struct VersionRow {
    id: String,
    user: String,
    project: String,
    status: String,
    lost: i32,
    builder: Option<String>,
    error: Option<String>,
    failed_step: Option<String>,
    output_key: Option<String>,
    token: Option<String>,
    finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn rows(farm: &Farm) -> anyhow::Result<Vec<VersionRow>> {
    let rows = sqlx::query(
        "select id, user_id, project_id, status, lost, builder_id, error, failed_step,
                output_manifest_key, finished_at,
                source_manifest->'files'->'token.txt'->>'inline' as token
         from versions",
    )
    .fetch_all(&farm.db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| VersionRow {
            id: r.get("id"),
            user: r.get("user_id"),
            project: r.get("project_id"),
            status: r.get("status"),
            lost: r.get("lost"),
            builder: r.get("builder_id"),
            error: r.get("error"),
            failed_step: r.get("failed_step"),
            output_key: r.get("output_manifest_key"),
            token: r.get("token"),
            finished_at: r.get("finished_at"),
        })
        .collect())
}

/// Waits until every accepted build is terminal and the stream has nothing left, at most
/// `settle`; returns what was still unsettled.
async fn wait_settled(farm: &Farm, ids: &[String], settle: Duration) -> anyhow::Result<Vec<String>> {
    let started = Instant::now();
    let keys = farm.keys();
    loop {
        let open: Vec<(String, String)> = sqlx::query_as(
            "select id, status from versions where id = any($1) and status in ('queued', 'running')",
        )
        .bind(ids)
        .fetch_all(&farm.db)
        .await
        .unwrap_or_else(|_| vec![("?".into(), "postgres unreachable".into())]);
        let mut redis = farm.redis().await?;
        let depth: u64 = redis.xlen(keys.stream()).await.unwrap_or(u64::MAX);
        if open.is_empty() && depth == 0 {
            return Ok(Vec::new());
        }
        if started.elapsed() > settle {
            let mut left: Vec<String> = open
                .iter()
                .map(|(id, status)| format!("{id} still {status}"))
                .collect();
            if depth > 0 {
                left.push(format!("the stream still holds {depth} entries"));
            }
            return Ok(left);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Checks every invariant once the farm has settled (at most `settle` after the last fault).
pub async fn verify(
    farm: &Farm,
    ledger: &Ledger,
    samples: &Samples,
    expect: &Expect,
    settle: Duration,
) -> anyhow::Result<Verdict> {
    let mut v = Verdict {
        builds: ledger.accepted.len(),
        ..Verdict::default()
    };
    let ids: Vec<String> = ledger.accepted.iter().map(|s| s.id.clone()).collect();
    let unsettled = wait_settled(farm, &ids, settle).await?;
    for u in &unsettled {
        v.violations.push(format!(
            "not settled {} s after the last fault: {u}",
            settle.as_secs()
        ));
    }
    let rows = rows(farm).await.context("reading the versions")?;
    let by_id: HashMap<&str, &VersionRow> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let finals = final_events(farm).await?;

    // Terminal, or lost.
    for s in &ledger.accepted {
        let Some(row) = by_id.get(s.id.as_str()) else {
            v.lost += 1;
            v.violations
                .push(format!("lost: accepted build {} has no row", s.id));
            continue;
        };
        *v.statuses.entry(row.status.clone()).or_default() += 1;
        v.reclaims += i64::from(row.lost);
        if !TERMINAL.contains(&row.status.as_str()) {
            v.lost += 1;
            v.violations.push(format!(
                "lost: build {} of {} is still {} (builder {:?})",
                s.id, s.project, row.status, row.builder
            ));
        }
        if row.token.as_deref() != Some(s.token.as_str()) {
            v.violations
                .push(format!("build {} holds the sources of another request", s.id));
        }
        match row.status.as_str() {
            "failed" => {
                let error = row.error.clone().unwrap_or_default();
                if error.starts_with("builder lost") {
                    v.notes.push(format!("build {} gave up: {error}", s.id));
                } else {
                    v.violations.push(format!(
                        "build {} failed at {} although its script cannot fail: {}",
                        s.id,
                        row.failed_step.as_deref().unwrap_or("?"),
                        first_line(&error)
                    ));
                }
            }
            "cancelled" if !expect.cancelled.contains(&s.id) => {
                v.violations
                    .push(format!("build {} was cancelled, and nobody cancelled it", s.id));
            }
            _ => {}
        }
    }
    for r in &ledger.refused {
        let Some(id) = &r.build_id else { continue };
        match by_id.get(id.as_str()) {
            Some(row) if !TERMINAL.contains(&row.status.as_str()) => {
                v.lost += 1;
                v.violations.push(format!(
                    "lost: build {id} was refused with 503 ({}) but is still {}",
                    r.error, row.status
                ));
            }
            None => v.notes.push(format!("a 503 named build {id}, which has no row")),
            Some(_) => {}
        }
    }

    // Duplicates.
    let refused: HashSet<&str> = ledger
        .refused
        .iter()
        .filter_map(|r| r.build_id.as_deref())
        .collect();
    let tokens: HashSet<&str> = ledger
        .accepted
        .iter()
        .map(|s| s.token.as_str())
        .chain(ledger.refused.iter().map(|r| r.token.as_str()))
        .chain(ledger.unanswered.iter().map(String::as_str))
        .collect();
    let mut per_token: HashMap<&str, Vec<&str>> = HashMap::new();
    for row in &rows {
        match row.token.as_deref() {
            Some(t) if tokens.contains(t) => {
                if !refused.contains(row.id.as_str()) {
                    per_token.entry(t).or_default().push(&row.id);
                }
            }
            _ => {
                v.duplicates += 1;
                v.violations.push(format!(
                    "duplicate: version {} ({}) answers no request",
                    row.id, row.status
                ));
            }
        }
    }
    for (token, ids) in &per_token {
        if ids.len() > 1 {
            v.duplicates += ids.len() - 1;
            v.violations
                .push(format!("duplicate: request {token} became versions {ids:?}"));
        }
    }
    let unanswered: HashSet<&str> = ledger.unanswered.iter().map(String::as_str).collect();
    let answered: HashSet<&str> = ledger.accepted.iter().map(|s| s.token.as_str()).collect();
    for row in &rows {
        if let Some(t) = row
            .token
            .as_deref()
            .filter(|t| unanswered.contains(t) && !answered.contains(t))
        {
            v.notes.push(format!(
                "version {} ({}) was admitted for request {t}, whose client got no answer",
                row.id, row.status
            ));
        }
    }
    for row in &rows {
        let events = finals.get(row.id.as_str());
        let count = |t: &str| events.and_then(|e| e.get(t)).copied().unwrap_or(0);
        let deployed = count("deploy_completed");
        if deployed > 1 {
            v.duplicates += (deployed - 1) as usize;
            v.violations.push(format!(
                "duplicate: build {} was deployed {deployed} times",
                row.id
            ));
        }
        let all: i64 = FINAL_EVENTS.iter().map(|t| count(t)).sum();
        if TERMINAL.contains(&row.status.as_str()) && all == 0 {
            v.violations.push(format!(
                "build {} is {} but has no final event",
                row.id, row.status
            ));
        } else if all > 1 && deployed <= 1 {
            v.violations
                .push(format!("build {} has {all} final events: {events:?}", row.id));
        }
        if row.status != "deployed" && deployed > 0 {
            v.violations.push(format!(
                "build {} is {} but its events say it was deployed",
                row.id, row.status
            ));
        }
    }

    // Complete files, from the recorded builder.
    let store = FsStore::new(farm.artifacts.clone());
    let recipes: HashMap<&str, &crate::load::Submission> =
        ledger.accepted.iter().map(|s| (s.id.as_str(), s)).collect();
    for row in rows.iter().filter(|r| r.status == "deployed") {
        let Some(sub) = recipes.get(row.id.as_str()) else {
            continue;
        };
        if let Err(problem) = check_output(farm, &store, row, sub) {
            v.violations
                .push(format!("incomplete: build {}: {problem}", row.id));
        }
    }

    // Slots and latest pointers.
    let mut redis = farm.redis().await?;
    let keys = farm.keys();
    let projects: BTreeSet<(&str, &str)> = ledger
        .accepted
        .iter()
        .map(|s| (s.user.as_str(), s.project.as_str()))
        .collect();
    for (user, project) in projects {
        let holder: Option<String> = redis.get(keys.inflight(user, project)).await?;
        if let Some(holder) = holder {
            v.violations
                .push(format!("project {project}'s slot is still held by {holder}"));
        }
        let newest = rows
            .iter()
            .filter(|r| r.user == user && r.project == project && r.status == "deployed")
            .max_by(|a, b| (a.finished_at, &a.id).cmp(&(b.finished_at, &b.id)));
        let pointer: Option<String> = redis.get(keys.latest(user, project)).await?;
        let pointed = pointer
            .as_deref()
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .and_then(|p| p["latestVersionId"].as_str().map(str::to_owned));
        if pointed.as_deref() != newest.map(|r| r.id.as_str()) {
            v.violations.push(format!(
                "project {project}'s latest pointer is {pointed:?}, its newest deployed version {:?}",
                newest.map(|r| &r.id)
            ));
        }
    }

    // One running build per project, sampled.
    v.violations.extend(samples.overlaps.iter().cloned());
    if samples.taken == 0 {
        v.violations.push("no sample of running builds was taken".into());
    }
    v.violations.extend(farm.exits());
    v.violations.extend(ledger.oddities.iter().cloned());
    if ledger.retried > 0 {
        v.notes.push(format!(
            "{} requests got no answer (connection closed or timed out) and were sent again with \
             their Idempotency-Key",
            ledger.retried
        ));
    }
    Ok(v)
}

/// Per build, how many of each final event it has.
async fn final_events(farm: &Farm) -> anyhow::Result<HashMap<String, HashMap<String, i64>>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "select build_id, type, count(*) from build_events where type = any($1) group by 1, 2",
    )
    .bind(FINAL_EVENTS)
    .fetch_all(&farm.db)
    .await?;
    let mut out: HashMap<String, HashMap<String, i64>> = HashMap::new();
    for (build, kind, n) in rows {
        out.entry(build).or_default().insert(kind, n);
    }
    Ok(out)
}

fn check_output(
    farm: &Farm,
    store: &FsStore,
    row: &VersionRow,
    sub: &crate::load::Submission,
) -> Result<(), String> {
    let key = row
        .output_key
        .as_deref()
        .ok_or("deployed without an output manifest")?;
    let raw = std::fs::read(store.path_of(key)).map_err(|e| format!("output manifest {key}: {e}"))?;
    let manifest: Manifest =
        serde_json::from_slice(&raw).map_err(|e| format!("output manifest {key}: {e}"))?;
    let expected = sub.recipe.expected_outputs();
    if manifest.files.len() != expected {
        return Err(format!(
            "{} files stored, {expected} written",
            manifest.files.len()
        ));
    }
    let mut contents = HashMap::new();
    for (path, entry) in &manifest.files {
        let body = match &entry.inline {
            Some(text) => text.clone().into_bytes(),
            None => std::fs::read(store.path_of(&Artifacts::blob_key(&entry.hash, entry.encoding)))
                .map_err(|e| format!("{path}: blob {}: {e}", entry.hash))
                .and_then(|stored| {
                    decode_blocking(entry.encoding, stored, entry.size)
                        .map_err(|e| format!("{path}: blob {}: {e}", entry.hash))
                })?,
        };
        if body.len() as u64 != entry.size || sha256_hex(&body) != entry.hash {
            return Err(format!("{path}: the stored bytes do not match the manifest"));
        }
        contents.insert(path.as_str(), body);
    }
    for i in 0..sub.recipe.parts {
        if !contents.contains_key(format!("assets/part-{i}.js").as_str()) {
            return Err(format!("assets/part-{i}.js is missing"));
        }
    }
    let index = contents.get("index.html").ok_or("index.html is missing")?;
    if !String::from_utf8_lossy(index).contains(&sub.token) {
        return Err("index.html is another request's".into());
    }
    let home = contents.get("builder.txt").ok_or("builder.txt is missing")?;
    let made_by = farm.daemon_of_home(&String::from_utf8_lossy(home));
    if made_by.is_none() || made_by != row.builder {
        return Err(format!(
            "the stored output was built by {made_by:?}, the row says {:?}",
            row.builder
        ));
    }
    Ok(())
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}
