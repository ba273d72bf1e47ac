//! Part 11: the framework matrix. Each project (a starter app per framework: the CI set's
//! fixtures and the heavier ones in `ops/bench/frameworks/`) built through an in-process farm,
//! cold (a farm whose pnpm store is empty) and warm (rebuilt, the store warm), beside the same
//! `pnpm install` + `pnpm run build` run directly; one table of what each came to and the times.

mod measure;
mod projects;

use std::path::Path;

use measure::{first_line, refused_as_planned, FarmRun, Measured, LOG_TAIL};
use projects::{Expect, Project};

use crate::farm::Env;
use crate::stats::median;
use crate::summary::{Outcome, Summary};

/// One row: a project and its figures.
#[derive(Debug, Clone)]
pub struct Row {
    pub project: Project,
    pub m: Measured,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub rows: Vec<Row>,
    pub cold_runs: usize,
    pub warm_runs: usize,
    /// The build limits the run set (`KILN_BUILD_MEMORY_MB=2048`), the farm's defaults
    /// otherwise.
    pub limits: Vec<String>,
}

pub async fn run(env: &Env, root: &Path) -> anyhow::Result<Report> {
    let list = projects::selected(std::env::var("KILN_BENCH_FRAMEWORKS").ok().as_deref())?;
    let (cold_runs, warm_runs) = projects::runs(std::env::var("KILN_BENCH_FRAMEWORK_RUNS").ok().as_deref())?;
    eprintln!(
        "[bench] frameworks: {} project(s), {cold_runs} cold + {warm_runs} warm run(s) a side",
        list.len()
    );
    let mut rows = Vec::new();
    for p in list {
        let m = match projects::folder(root, &p) {
            Ok(dir) => measure::measure(env, &p, &dir, cold_runs, warm_runs).await,
            Err(e) => Measured {
                error: Some(e),
                ..Default::default()
            },
        };
        if let Some(e) = &m.error {
            eprintln!("[bench] frameworks {}: not measured: {e}", p.name);
        }
        rows.push(Row { project: p, m });
    }
    let limits = measure::LIMITS
        .iter()
        .filter_map(|k| Some(format!("{k}={}", std::env::var(k).ok()?)))
        .collect();
    let report = Report {
        rows,
        cold_runs,
        warm_runs,
        limits,
    };
    print_details(&report);
    Ok(report)
}

impl Row {
    /// What the project came to in the farm (its first cold build), and whether that is what
    /// was planned.
    pub fn outcome(&self) -> (String, bool) {
        let p = &self.project;
        if let Some(e) = &self.m.error {
            return (format!("NOT MEASURED: {}", first_line(e)), false);
        }
        let Some(first) = self.m.farm_cold.first() else {
            return ("NOT MEASURED".into(), false);
        };
        let (text, planned) = describe(p, first);
        // Every later build must come to the same.
        let same = self
            .m
            .farm_cold
            .iter()
            .chain(&self.m.farm_warm)
            .all(|r| describe(p, r).1 == planned);
        if planned && !same {
            return (format!("{text} (but a later build did not)"), false);
        }
        (text, planned)
    }
}

fn describe(p: &Project, r: &FarmRun) -> (String, bool) {
    let detected = r
        .framework
        .as_deref()
        .map(|f| format!(" [{f}]"))
        .unwrap_or_default();
    match (r.status.as_str(), p.expect) {
        ("deployed", Expect::Deploy(dir)) => {
            let recorded = r.output_dir.as_deref().map(|d| d.trim_end_matches('/'));
            // Until the API shows the folder a build published, the row names the one the
            // project writes, marked so; its page at / was checked all the same.
            let folder = recorded.map_or_else(|| format!("{dir}/ (expected)"), |d| format!("{d}/"));
            let wrong_dir = recorded.is_some_and(|d| d != dir);
            match &r.preview_problem {
                Some(problem) => (format!("deployed {folder}{detected}, but {problem}"), false),
                None if wrong_dir => (format!("deployed {folder}{detected}, expected {dir}/"), false),
                None => (format!("deployed {folder}{detected}"), true),
            }
        }
        ("deployed", Expect::Refuse(_)) => (
            format!(
                "DEPLOYED{detected} (expected a refusal) from {}",
                r.output_dir.as_deref().unwrap_or("?")
            ),
            false,
        ),
        _ => {
            let error = first_line(r.error.as_deref().unwrap_or(""));
            if refused_as_planned(p, r) {
                (format!("refused{detected}: {}", first_words(error, 12)), true)
            } else {
                (
                    format!(
                        "FAILED at {}{detected}: {error}",
                        r.failed_step.as_deref().unwrap_or("?")
                    ),
                    false,
                )
            }
        }
    }
}

/// The first `n` words of `s`, with "…" when there are more.
fn first_words(s: &str, n: usize) -> String {
    let words: Vec<&str> = s.split_whitespace().collect();
    let mut out = words.iter().take(n).copied().collect::<Vec<_>>().join(" ");
    if words.len() > n {
        out.push_str(" …");
    }
    out
}

fn secs(samples: &[f64]) -> String {
    if samples.is_empty() {
        "-".into()
    } else {
        format!("{:.1} s", median(samples) / 1000.0)
    }
}

fn farm_ms(runs: &[FarmRun]) -> Vec<f64> {
    runs.iter().map(|r| r.ms).collect()
}

impl Summary for Report {
    fn print(&self) -> Outcome {
        let planned = self.rows.iter().filter(|r| r.outcome().1).count();
        let limits = if self.limits.is_empty() {
            "the default build limits".to_owned()
        } else {
            self.limits.join(" ")
        };
        println!(
            "frameworks  {planned}/{} projects deployed or refused as planned  ({} cold + {} warm run(s) a side, medians; {limits})  target all  {}",
            self.rows.len(),
            self.cold_runs,
            self.warm_runs,
            crate::stats::verdict(planned == self.rows.len())
        );
        println!("| framework | project | outcome in the farm | farm cold | farm warm | direct cold | direct warm | warm farm/direct |");
        println!("|---|---|---|---|---|---|---|---|");
        for row in &self.rows {
            let (outcome, _) = row.outcome();
            let (fw, dw) = (farm_ms(&row.m.farm_warm), &row.m.direct_warm_ms);
            let ratio = if fw.is_empty() || dw.is_empty() {
                "-".into()
            } else {
                format!("{:.2}", median(&fw) / median(dw))
            };
            let direct_cold = match (&row.m.direct_error, row.m.direct_cold_ms.is_empty()) {
                (Some(e), true) => format!("failed: {}", first_line(e)),
                _ => secs(&row.m.direct_cold_ms),
            };
            println!(
                "| {} | `{}` | {} | {} | {} | {} | {} | {} |",
                row.project.framework,
                row.project.path,
                outcome.replace('|', "\\|"),
                secs(&farm_ms(&row.m.farm_cold)),
                secs(&fw),
                direct_cold.replace('|', "\\|"),
                secs(dw),
                ratio
            );
        }
        Outcome::met(planned == self.rows.len())
    }
}

fn print_details(r: &Report) {
    println!(
        "-- framework matrix: {} cold + {} warm run(s) a side; cold = a fresh farm with an empty pnpm store and cache (and an empty direct store) --",
        r.cold_runs, r.warm_runs
    );
    for row in &r.rows {
        let m = &row.m;
        let list = |runs: &[FarmRun]| {
            runs.iter()
                .map(|b| {
                    format!(
                        "{:.0} (install {} build {})",
                        b.ms,
                        b.install_ms.map_or_else(|| "-".into(), |v| format!("{v:.0}")),
                        b.build_ms.map_or_else(|| "-".into(), |v| format!("{v:.0}"))
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("{}:", row.project.name);
        println!("  farm cold ms   [{}]", list(&m.farm_cold));
        println!("  farm warm ms   [{}]", list(&m.farm_warm));
        println!("  direct cold ms [{}]", crate::stats::list(&m.direct_cold_ms, 0));
        println!("  direct warm ms [{}]", crate::stats::list(&m.direct_warm_ms, 0));
        if let Some(e) = &m.direct_error {
            println!(
                "  direct error: {}",
                e.lines().take(12).collect::<Vec<_>>().join("\n    ")
            );
        }
        if let Some(b) = m.farm_cold.iter().chain(&m.farm_warm).find(|b| b.error.is_some()) {
            let e = b.error.as_deref().unwrap_or_default();
            println!(
                "  farm error: {}",
                e.lines().take(12).collect::<Vec<_>>().join("\n    ")
            );
            // A planned refusal's log is nothing new; any other failure's is what to look at.
            if !refused_as_planned(&row.project, b) {
                if let Some(tail) = &b.log_tail {
                    println!(
                        "  its log's last {LOG_TAIL} lines:\n    {}",
                        tail.replace('\n', "\n    ")
                    );
                }
            }
        }
        if let Some(e) = &m.error {
            println!("  not measured: {e}");
        }
    }
}
