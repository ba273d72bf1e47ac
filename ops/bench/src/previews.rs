//! Part: serving previews. GETs of a deployed version's page (`Host: <versionId>.localhost`), 32
//! in flight, from a public project; then, when the API has private previews, the same from
//! the project made private, each request carrying the share cookie. Every preview request
//! checks its project's gate (the KV's cached copy of the project's row), so this is what
//! that check costs, and what a private preview's signed cookie costs on top.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use kiln_shared::domain::read_tree;
use kiln_testkit::signed::Signer;
use serde_json::{json, Value};

use crate::farm::{Env, Farm, HMAC_SECRET};
use crate::stats::{self, percentile};
use crate::summary::{Outcome, Summary};

pub const READS: usize = 20_000;
pub const WARMUP: usize = 1_000;
pub const CONCURRENCY: usize = 32;
pub const MIN_READS_PER_S: f64 = 2_000.0;
pub const MAX_P99_MS: f64 = 25.0;
const USER: &str = "bench-user";
const PROJECT: &str = "previews";

/// Requests per second and latencies of one series.
#[derive(Debug, Clone)]
pub struct Series {
    pub per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Series {
    fn pass(&self) -> bool {
        self.per_s >= MIN_READS_PER_S && self.p99_ms <= MAX_P99_MS
    }
}

#[derive(Debug, Clone)]
pub struct Report {
    pub public: Series,
    /// `None` when the API has no private previews (an older revision).
    pub private: Option<Series>,
}

impl Summary for Report {
    fn print(&self) -> Outcome {
        let line = |name: &str, s: &Series| {
            println!(
                "{name:<11} {:.0} req/s  p50 {:.2} ms  p99 {:.2} ms  target >= {MIN_READS_PER_S}/s, p99 <= {MAX_P99_MS} ms  {}",
                s.per_s,
                s.p50_ms,
                s.p99_ms,
                stats::verdict(s.pass())
            );
        };
        line("preview", &self.public);
        if let Some(private) = &self.private {
            line("private", private);
            println!(
                "private/public throughput {:.2}x",
                private.per_s / self.public.per_s
            );
        }
        Outcome::met(self.public.pass() && self.private.as_ref().is_none_or(Series::pass))
    }
}

pub async fn run(env: &Env, static_site: &std::path::Path) -> anyhow::Result<Report> {
    let farm = Arc::new(Farm::start(env, 1).await?);
    let result = measure(&farm, static_site).await;
    if let Ok(farm) = Arc::try_unwrap(farm) {
        let dir = farm.stop().await;
        tokio::task::spawn_blocking(move || drop(dir)).await?;
    }
    let report = result?;
    println!("-- previews: {READS} GETs of a version's page, {CONCURRENCY} in flight, public then private (share cookie) --");
    Ok(report)
}

async fn measure(farm: &Arc<Farm>, static_site: &std::path::Path) -> anyhow::Result<Report> {
    let files = read_tree(static_site).with_context(|| format!("reading {}", static_site.display()))?;
    let built = farm
        .build(&json!({ "userId": USER, "projectId": PROJECT, "files": files }))
        .await
        .context("the build")?;
    let url = format!(
        "http://127.0.0.1:{}/",
        farm.settings.preview.public_port.context("the preview port")?
    );
    let host = format!("{}.localhost", built.id);
    series(farm, &url, &host, None, WARMUP).await?;
    let public = series(farm, &url, &host, None, READS).await?;
    eprintln!(
        "[bench] previews: public {:.0}/s p99 {:.2} ms",
        public.per_s, public.p99_ms
    );

    // Private, when this API has it: the project made private, a share link opened once.
    let patch = Signer::new(HMAC_SECRET).request(
        &farm.client,
        "PATCH",
        &farm.api,
        &format!("/v1/projects/{USER}/{PROJECT}"),
        bytes::Bytes::from(json!({ "previewAccess": "private" }).to_string()),
    );
    let res = patch.send().await?;
    if res.status() == 404 || res.status() == 405 {
        eprintln!("[bench] previews: this API has no private previews");
        return Ok(Report {
            public,
            private: None,
        });
    }
    if !res.status().is_success() {
        bail!("PATCH answered {}", res.status());
    }
    let share = farm
        .signed_post(
            &format!("/v1/projects/{USER}/{PROJECT}/share-links"),
            json!({ "versionId": built.id, "ttlSecs": 3600 })
                .to_string()
                .into(),
        )
        .send()
        .await?;
    let link: Value = share.json().await?;
    let link = link["url"].as_str().context("a share link")?;
    let query = link.split_once('?').map(|(_, q)| q).context("the link's token")?;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let first = no_redirects
        .get(format!("{url}?{query}"))
        .header("Host", &host)
        .send()
        .await?;
    let cookie = first
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .context("the share link sets a cookie")?
        .to_owned();
    series(farm, &url, &host, Some(&cookie), WARMUP).await?;
    let private = series(farm, &url, &host, Some(&cookie), READS).await?;
    eprintln!(
        "[bench] previews: private {:.0}/s p99 {:.2} ms",
        private.per_s, private.p99_ms
    );
    Ok(Report {
        public,
        private: Some(private),
    })
}

/// `count` GETs of the page, `CONCURRENCY` in flight; every answer must be 200.
async fn series(
    farm: &Arc<Farm>,
    url: &str,
    host: &str,
    cookie: Option<&str>,
    count: usize,
) -> anyhow::Result<Series> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (farm, next) = (farm.clone(), next.clone());
        let (url, host, cookie) = (url.to_owned(), host.to_owned(), cookie.map(str::to_owned));
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let t0 = Instant::now();
                let mut req = farm.client.get(&url).header("Host", &host);
                if let Some(cookie) = &cookie {
                    req = req.header("Cookie", cookie);
                }
                let res = req.send().await?;
                let status = res.status();
                let _ = res.bytes().await?;
                if status != 200 {
                    bail!("GET {host} answered {status}");
                }
                seen.push(stats::ms(t0.elapsed()));
            }
            Ok::<_, anyhow::Error>(seen)
        }));
    }
    let mut all = Vec::with_capacity(count);
    for t in tasks {
        all.extend(t.await??);
    }
    let wall: Duration = started.elapsed();
    Ok(Series {
        per_s: count as f64 / wall.as_secs_f64(),
        p50_ms: percentile(&all, 50.0),
        p99_ms: percentile(&all, 99.0),
    })
}
