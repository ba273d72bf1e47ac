//! Part `ratelimit`: how exactly the limits hold under concurrent load. Requests admitted in one
//! window against the configured number, for the fleet-wide quotas in Redis across two API
//! instances (new projects per user; rebuilds per project, each superseding the queued one) and
//! for the per-IP limit (in process: one instance, then two).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use kiln_testkit::signed::Signer;
use serde_json::json;

use crate::farm::{Env, Farm, HMAC_SECRET};
use crate::stats::{self, median};
use crate::summary::{Outcome, Summary};

pub const ROUNDS: usize = 5;
/// Requests in flight at once, spread over the two instances.
pub const CONCURRENCY: usize = 32;
pub const NEW_PROJECTS: u32 = 20;
pub const REBUILDS: u32 = 10;
pub const PER_IP: u32 = 50;
/// Requests sent at each limit: several times the limit.
const SENT: usize = 200;

/// One limit's figures over the runs: admitted per run, and the other answers.
#[derive(Debug, Clone)]
pub struct Figure {
    pub configured: u32,
    pub admitted: Vec<usize>,
    /// Answers that were neither admitted nor 429 (409 or 503 of replacing rebuilds that lost
    /// their race for the project's slot; they give their quota unit back).
    pub other: Vec<usize>,
    pub millis: Vec<f64>,
}

impl Figure {
    fn new(configured: u32) -> Self {
        Self {
            configured,
            admitted: Vec::new(),
            other: Vec::new(),
            millis: Vec::new(),
        }
    }

    fn record(&mut self, admitted: usize, other: usize, millis: f64) {
        self.admitted.push(admitted);
        self.other.push(other);
        self.millis.push(millis);
    }

    pub fn median_admitted(&self) -> f64 {
        median(&self.admitted.iter().map(|n| *n as f64).collect::<Vec<_>>())
    }

    /// Admitted / configured (1.0 is exact).
    pub fn accuracy(&self) -> f64 {
        self.median_admitted() / f64::from(self.configured)
    }

    /// Never more than configured, in any run.
    pub fn never_over(&self, factor: u32) -> bool {
        self.admitted
            .iter()
            .all(|n| *n <= (self.configured * factor) as usize)
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub new_projects: Figure,
    pub rebuilds: Figure,
    /// Rebuilds one after another (each replacing the queued one), alternating instances.
    pub rebuilds_paced: Figure,
    pub per_ip_one: Figure,
    /// The per-IP limit is per process: two instances admit up to twice the limit.
    pub per_ip_two: Figure,
}

impl Report {
    pub fn pass(&self) -> bool {
        self.new_projects.never_over(1)
            && self.new_projects.accuracy() == 1.0
            && self.rebuilds.never_over(1)
            && self.rebuilds_paced.never_over(1)
            && self.rebuilds_paced.accuracy() == 1.0
            && self.per_ip_one.never_over(1)
            && self.per_ip_one.accuracy() == 1.0
            && self.per_ip_two.never_over(2)
    }
}

/// Sends `requests` with `CONCURRENCY` in flight; (status counts: admitted, 429, other; wall ms).
async fn blast(
    requests: Vec<reqwest::RequestBuilder>,
    admitted_status: u16,
) -> anyhow::Result<(usize, usize, usize, f64)> {
    send_all(requests, admitted_status, CONCURRENCY).await
}

/// Sends `requests` with `in_flight` at once.
async fn send_all(
    requests: Vec<reqwest::RequestBuilder>,
    admitted_status: u16,
    in_flight: usize,
) -> anyhow::Result<(usize, usize, usize, f64)> {
    let queue = Arc::new(Mutex::new(VecDeque::from(requests)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let next = queue.lock().expect("not poisoned").pop_front();
                let Some(req) = next else { break };
                let res = req.send().await?;
                let status = res.status().as_u16();
                let text = res.text().await?;
                if status != admitted_status && status != 429 && !text.contains("\"error\"") {
                    bail!("{status} without a JSON error: {text}");
                }
                seen.push(status);
            }
            Ok::<_, anyhow::Error>(seen)
        }));
    }
    let (mut ok, mut limited, mut other) = (0, 0, 0);
    for t in tasks {
        for status in t.await.context("a sender task panicked")?? {
            match status {
                s if s == admitted_status => ok += 1,
                429 => limited += 1,
                _ => other += 1,
            }
        }
    }
    Ok((ok, limited, other, stats::ms(started.elapsed())))
}

fn signed(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: &serde_json::Value,
) -> reqwest::RequestBuilder {
    let body = Bytes::from(body.to_string());
    let mut req = client.post(format!("{base}{path}"));
    for (name, value) in Signer::new(HMAC_SECRET).headers_without_nonce("POST", path, &body) {
        req = req.header(name, value);
    }
    req.header("Content-Type", "application/json").body(body)
}

fn site(project: &str, n: usize) -> serde_json::Value {
    json!([{ "path": "index.html", "content": format!("<h1>{project} {n}</h1>") }])
}

impl Summary for Report {
    fn print(&self) -> Outcome {
        let targets_met = self.pass();
        println!(
    "ratelimit   admitted in one window / configured (median of {} runs): new projects {:.0}/{} ({:.2}), rebuilds {:.0}/{} ({:.2}) in a burst of replacing requests, {:.0}/{} one at a time, all across 2 API instances; per IP {:.0}/{} on one instance ({:.2}), {:.0} on two  | target quotas never over; new projects, paced rebuilds and per IP exact  {}",
    ROUNDS,
    self.new_projects.median_admitted(),
    self.new_projects.configured,
    self.new_projects.accuracy(),
    self.rebuilds.median_admitted(),
    self.rebuilds.configured,
    self.rebuilds.accuracy(),
    self.rebuilds_paced.median_admitted(),
    self.rebuilds_paced.configured,
    self.per_ip_one.median_admitted(),
    self.per_ip_one.configured,
    self.per_ip_one.accuracy(),
    self.per_ip_two.median_admitted(),
    stats::verdict(self.pass())
);
        Outcome::met(targets_met)
    }
}

pub async fn run(env: &Env) -> anyhow::Result<Report> {
    let mut report = Report {
        new_projects: Figure::new(NEW_PROJECTS),
        rebuilds: Figure::new(REBUILDS),
        rebuilds_paced: Figure::new(REBUILDS),
        per_ip_one: Figure::new(PER_IP),
        per_ip_two: Figure::new(PER_IP),
    };
    let new_projects = NEW_PROJECTS.to_string();
    let rebuilds = REBUILDS.to_string();
    let per_ip = format!("{PER_IP}/hour");
    for round in 1..=ROUNDS {
        // A fresh farm each run: a fresh Redis prefix, so every window starts empty.
        let farm = Farm::start_with(
            env,
            0,
            &[
                ("KILN_QUOTA_NEW_PROJECTS_PER_HOUR", &new_projects),
                ("KILN_QUOTA_REBUILDS_PER_HOUR", &rebuilds),
                ("KILN_RATE_LIMIT_PER_IP", &per_ip),
            ],
        )
        .await?;
        let other = farm.another_api().await?;
        let bases = [farm.api.clone(), other.url.clone()];
        let client = &farm.client;

        // New projects of one user, half on each instance.
        let user = format!("u{round}");
        let reqs = (0..SENT)
            .map(|i| {
                let body = json!({ "userId": user, "projectId": format!("p{i}"), "files": site("p", i) });
                signed(client, &bases[i % 2], "/v1/builds", &body)
            })
            .collect();
        let (ok, _, other_n, ms) = blast(reqs, 202).await.context("new projects")?;
        report.new_projects.record(ok, other_n, ms);

        // Rebuilds of one project (its first build is a new project of another user), each
        // replacing the queued one, half on each instance.
        let owner = format!("r{round}");
        let first = json!({ "userId": owner, "projectId": "p", "files": site("first", 0) });
        let res = signed(client, &bases[0], "/v1/builds", &first).send().await?;
        if res.status() != 202 {
            bail!(
                "the rebuilt project's first build: {} {}",
                res.status(),
                res.text().await?
            );
        }
        let reqs = (0..SENT)
            .map(|i| {
                let body = json!({ "userId": owner, "projectId": "p", "files": site("p", i), "onConflict": "supersede" });
                signed(client, &bases[i % 2], "/v1/builds", &body)
            })
            .collect();
        let (ok, _, other_n, ms) = blast(reqs, 202).await.context("rebuilds")?;
        report.rebuilds.record(ok, other_n, ms);

        // The same, one request at a time (as a person or a back end rebuilds): every unit is
        // used, none twice.
        let owner = format!("s{round}");
        let first = json!({ "userId": owner, "projectId": "p", "files": site("first", 0) });
        signed(client, &bases[1], "/v1/builds", &first).send().await?;
        let reqs = (0..3 * REBUILDS as usize)
            .map(|i| {
                let body = json!({ "userId": owner, "projectId": "p", "files": site("p", i), "onConflict": "supersede" });
                signed(client, &bases[i % 2], "/v1/builds", &body)
            })
            .collect();
        let (ok, _, other_n, ms) = send_all(reqs, 202, 1).await.context("paced rebuilds")?;
        report.rebuilds_paced.record(ok, other_n, ms);

        // The per-IP limit (user tokens are counted; the back end and operators are not): one
        // user token's reads on one instance, then another's on two fresh instances (each
        // process has its own limiter, so this shows what a load balancer in front of two
        // instances lets through).
        let token = |user: &str| {
            let body = json!({ "userId": user });
            signed(client, &bases[0], "/v1/tokens", &body)
        };
        let mut tokens = Vec::new();
        for u in ["ip1", "ip2"] {
            let res = token(u).send().await?;
            let body: serde_json::Value = res.json().await?;
            tokens.push(body["token"].as_str().context("a token")?.to_owned());
        }
        let reqs = (0..SENT)
            .map(|_| {
                client
                    .get(format!("{}/v1/builds?limit=1", bases[0]))
                    .bearer_auth(&tokens[0])
            })
            .collect();
        let (ok, _, other_n, ms) = blast(reqs, 200).await.context("per IP, one instance")?;
        report.per_ip_one.record(ok, other_n, ms);
        let (a, b) = (farm.another_api().await?, farm.another_api().await?);
        let pair = [a.url.clone(), b.url.clone()];
        let reqs = (0..SENT)
            .map(|i| {
                client
                    .get(format!("{}/v1/builds?limit=1", pair[i % 2]))
                    .bearer_auth(&tokens[1])
            })
            .collect();
        let (ok, _, other_n, ms) = blast(reqs, 200).await.context("per IP, two instances")?;
        report.per_ip_two.record(ok, other_n, ms);

        eprintln!(
            "[bench] ratelimit run {round}/{ROUNDS}  new projects {}/{NEW_PROJECTS}  rebuilds {}/{REBUILDS} ({} lost the slot race), one at a time {}/{REBUILDS}  per IP {}/{PER_IP} on one instance, {}/{} on two",
            report.new_projects.admitted[round - 1],
            report.rebuilds.admitted[round - 1],
            report.rebuilds.other[round - 1],
            report.rebuilds_paced.admitted[round - 1],
            report.per_ip_one.admitted[round - 1],
            report.per_ip_two.admitted[round - 1],
            2 * PER_IP,
        );
        a.stop().await;
        b.stop().await;
        other.stop().await;
        let folder = farm.stop().await;
        tokio::task::spawn_blocking(move || drop(folder)).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    print_details(&report);
    Ok(report)
}

fn print_details(r: &Report) {
    println!(
        "-- ratelimit: {SENT} requests at each limit, {CONCURRENCY} in flight, {ROUNDS} runs (admitted per run; median) --"
    );
    let line = |name: &str, f: &Figure, note: &str| {
        println!(
            "{name:<34} configured {:>3}  admitted [{}]  median {:.0}  accuracy {:.2}  other answers [{}]  ms [{}]{note}",
            f.configured,
            stats::list(&f.admitted.iter().map(|n| *n as f64).collect::<Vec<_>>(), 0),
            f.median_admitted(),
            f.accuracy(),
            stats::list(&f.other.iter().map(|n| *n as f64).collect::<Vec<_>>(), 0),
            stats::list(&f.millis, 0),
        );
    };
    line("new projects/user, 2 instances", &r.new_projects, "");
    line(
        "rebuilds/project, 2 instances",
        &r.rebuilds,
        "  (replacing rebuilds: others lost the slot race, gave their unit back)",
    );
    line(
        "rebuilds/project, one at a time",
        &r.rebuilds_paced,
        "  (30 sent in turn to the 2 instances)",
    );
    line("per IP, 1 instance", &r.per_ip_one, "");
    line("per IP, 2 instances", &r.per_ip_two, "  (per process: up to 2x)");
}
