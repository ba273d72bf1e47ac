//! Submitting builds the way a product back end does, and remembering every answer.
//!
//! One task per project submits that project's builds one after another without waiting for
//! them to finish: while the project has a build in flight the API answers 409 and the task
//! tries again a moment later, so that "one build per project at a time" is Kiln's doing, not
//! the submitter's. Every request carries an `Idempotency-Key` (its token), so a request retried
//! after a lost answer can never become a second build.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::farm::Farm;
use crate::project::Recipe;

/// A build the API accepted (202).
#[derive(Debug, Clone)]
pub struct Submission {
    pub id: String,
    pub user: String,
    pub project: String,
    pub token: String,
    pub recipe: Recipe,
}

/// A request the API refused with 503 (a dependency was down). With a `buildId`, the build
/// must have been recorded `failed`.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub build_id: Option<String>,
    pub token: String,
    pub error: String,
}

/// Every answer of a scenario.
#[derive(Debug, Default)]
pub struct Ledger {
    pub accepted: Vec<Submission>,
    pub refused: Vec<Refusal>,
    /// Requests answered 409 (another build of the project in flight).
    pub conflicts: u64,
    /// Anything else unexpected (a 500, a build never accepted), for the report.
    pub oddities: Vec<String>,
    /// Requests that got no answer (a connection closed or timed out) and were sent again.
    pub retried: u64,
    /// Tokens of requests that got no answer (the API may still have admitted them).
    pub unanswered: Vec<String>,
    /// Requests answered 409 "still being processed" (their Idempotency-Key reserved by an
    /// earlier try), and the longest a request was answered so.
    pub in_progress: u64,
    pub longest_in_progress: Duration,
}

pub type SharedLedger = Arc<Mutex<Ledger>>;

/// One build to submit.
#[derive(Debug, Clone)]
pub struct Request {
    pub recipe: Recipe,
    /// `onConflict: supersede`: replace the project's queued build rather than wait.
    pub supersede: bool,
}

/// One project's builds, submitted in order.
#[derive(Debug, Clone)]
pub struct Plan {
    pub user: String,
    pub project: String,
    pub requests: Vec<Request>,
}

/// Waits (at most a minute) until the run is under way: a third of its `builds` accepted and
/// something running, the moment a fault is worth injecting.
pub async fn wait_for_mid_run(farm: &Farm, ledger: &SharedLedger, builds: usize) {
    let wait_from = Instant::now();
    while wait_from.elapsed() < Duration::from_secs(60) {
        let running: i64 = sqlx::query_scalar("select count(*) from versions where status = 'running'")
            .fetch_one(&farm.db)
            .await
            .unwrap_or(0);
        if accepted_count(ledger) >= builds / 3 && running > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn accepted_count(ledger: &SharedLedger) -> usize {
    ledger.lock().expect("ledger lock").accepted.len()
}

/// Submits a plan's builds; gives up on a build at `deadline` (noted in the ledger).
pub async fn run_plan(farm: Arc<Farm>, ledger: SharedLedger, plan: Plan, deadline: Instant) {
    for (k, request) in plan.requests.iter().enumerate() {
        let token = format!(
            "{}-{k}-{}",
            plan.project,
            ulid::Ulid::new().to_string().to_ascii_lowercase()
        );
        if submit(&farm, &ledger, &plan, request, &token, deadline)
            .await
            .is_none()
        {
            ledger.lock().expect("ledger lock").oddities.push(format!(
                "{}: build {k} was never accepted before the deadline",
                plan.project
            ));
            return;
        }
    }
}

/// Submits one build until it is accepted; its id.
pub async fn submit(
    farm: &Farm,
    ledger: &SharedLedger,
    plan: &Plan,
    request: &Request,
    token: &str,
    deadline: Instant,
) -> Option<String> {
    let mut body = json!({
        "userId": plan.user,
        "projectId": plan.project,
        "files": request.recipe.files(token),
    });
    if request.supersede {
        body["onConflict"] = json!("supersede");
    }
    let mut in_progress_since: Option<Instant> = None;
    while Instant::now() < deadline {
        let pause = match farm.submit(&body, token).await {
            Ok((409, answer))
                if answer["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("still being processed")) =>
            {
                let since = *in_progress_since.get_or_insert_with(Instant::now);
                let mut l = ledger.lock().expect("ledger lock");
                l.in_progress += 1;
                l.longest_in_progress = l.longest_in_progress.max(since.elapsed());
                jitter(150, 400)
            }
            Ok((202, answer)) => {
                let Some(id) = answer["buildId"].as_str() else {
                    note(ledger, format!("a 202 without a buildId: {answer}"));
                    return None;
                };
                ledger.lock().expect("ledger lock").accepted.push(Submission {
                    id: id.to_owned(),
                    user: plan.user.clone(),
                    project: plan.project.clone(),
                    token: token.to_owned(),
                    recipe: request.recipe.clone(),
                });
                return Some(id.to_owned());
            }
            Ok((409, _)) => {
                ledger.lock().expect("ledger lock").conflicts += 1;
                jitter(150, 400)
            }
            Ok((503, answer)) => {
                ledger.lock().expect("ledger lock").refused.push(Refusal {
                    build_id: answer["buildId"].as_str().map(str::to_owned),
                    token: token.to_owned(),
                    error: answer["error"].as_str().unwrap_or_default().to_owned(),
                });
                jitter(300, 700)
            }
            Ok((status, answer)) => {
                note(ledger, format!("POST /v1/builds answered {status}: {answer}"));
                jitter(300, 700)
            }
            Err(e) => {
                // Retried with the same Idempotency-Key: it can never become a second build.
                tracing::debug!(
                    error = format!("{e:#}"),
                    "POST /v1/builds got no answer; retrying"
                );
                let mut l = ledger.lock().expect("ledger lock");
                l.unanswered.push(token.to_owned());
                l.retried += 1;
                jitter(300, 700)
            }
        };
        tokio::time::sleep(pause).await;
    }
    None
}

fn note(ledger: &SharedLedger, what: String) {
    tracing::warn!("{what}");
    ledger.lock().expect("ledger lock").oddities.push(what);
}

fn jitter(min_ms: u64, max_ms: u64) -> Duration {
    Duration::from_millis(rand::thread_rng().gen_range(min_ms..=max_ms))
}

/// `builds` builds spread over `projects` projects of one user, each a quick recipe whose
/// build waits a random 0–`max_sleep_ms`; every fourth build of a project supersedes.
pub fn plans(
    rng: &mut impl Rng,
    prefix: &str,
    projects: usize,
    builds: usize,
    max_sleep_ms: u64,
) -> Vec<Plan> {
    (0..projects)
        .map(|p| {
            let count = builds / projects + usize::from(p < builds % projects);
            let requests = (0..count)
                .map(|k| Request {
                    recipe: Recipe::quick(
                        if rng.gen_bool(0.3) {
                            0
                        } else {
                            rng.gen_range(0..=max_sleep_ms)
                        },
                        rng.gen_range(2..=12),
                    ),
                    supersede: k % 4 == 3,
                })
                .collect();
            Plan {
                user: "chaos".into(),
                project: format!("{prefix}-{p:02}"),
                requests,
            }
        })
        .collect()
}

/// Runs every plan at once; returns when all are submitted (or the deadline passed).
pub async fn run_plans(farm: Arc<Farm>, ledger: SharedLedger, plans: Vec<Plan>, deadline: Instant) {
    let mut tasks = tokio::task::JoinSet::new();
    for plan in plans {
        tasks.spawn(run_plan(farm.clone(), ledger.clone(), plan, deadline));
    }
    while tasks.join_next().await.is_some() {}
}

/// A build's `latestEvent` type, if any.
pub fn latest_event(build: &Value) -> Option<&str> {
    build["latestEvent"]["type"].as_str()
}

/// Submits one build once (no retry); a 202 is recorded in the ledger. Returns the answer.
pub async fn submit_once(
    farm: &Farm,
    ledger: &SharedLedger,
    user: &str,
    project: &str,
    recipe: &Recipe,
) -> anyhow::Result<(u16, Value)> {
    let token = format!("{project}-{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
    let body = json!({ "userId": user, "projectId": project, "files": recipe.files(&token) });
    let (status, answer) = match farm.submit(&body, &token).await {
        Ok(a) => a,
        Err(e) => {
            ledger.lock().expect("ledger lock").unanswered.push(token);
            return Err(e);
        }
    };
    if let (202, Some(id)) = (status, answer["buildId"].as_str()) {
        ledger.lock().expect("ledger lock").accepted.push(Submission {
            id: id.to_owned(),
            user: user.to_owned(),
            project: project.to_owned(),
            token,
            recipe: recipe.clone(),
        });
    } else if status == 503 {
        ledger.lock().expect("ledger lock").refused.push(Refusal {
            build_id: answer["buildId"].as_str().map(str::to_owned),
            token,
            error: answer["error"].as_str().unwrap_or_default().to_owned(),
        });
    }
    Ok((status, answer))
}
