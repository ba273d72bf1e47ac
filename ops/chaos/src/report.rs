//! One row per scenario, and the table printed at the end.

use std::fmt::Write as _;

use crate::check::Verdict;

/// How many violations of one scenario the report lists (all are counted).
const LISTED: usize = 15;

#[derive(Debug, Default)]
pub struct Row {
    pub scenario: String,
    pub verdict: Verdict,
    /// Faults injected: `kill -9` of a daemon (or of Redis), a stop of Postgres, a partition.
    pub kills: usize,
    pub secs: f64,
}

impl Row {
    pub fn pass(&self) -> bool {
        self.verdict.violations.is_empty() && self.verdict.duplicates == 0 && self.verdict.lost == 0
    }

    /// A scenario that could not run: its error is its one violation.
    pub fn broken(scenario: &str, error: &anyhow::Error, secs: f64) -> Self {
        Self {
            scenario: scenario.to_owned(),
            verdict: Verdict {
                violations: vec![format!("the scenario could not run: {error:#}")],
                ..Verdict::default()
            },
            kills: 0,
            secs,
        }
    }

    fn ended(&self) -> String {
        let parts: Vec<String> = self
            .verdict
            .statuses
            .iter()
            .map(|(status, n)| format!("{n} {status}"))
            .collect();
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(", ")
        }
    }
}

/// The table, then each scenario's violations and notes.
pub fn render(rows: &[Row], header: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n== Kiln chaos: {header} ==");
    let _ = writeln!(
        out,
        "{:<12} {:>6}  {:<40} {:>5} {:>8} {:>10} {:>4}  {:>6}  result",
        "scenario", "builds", "ended as", "kills", "reclaims", "duplicates", "lost", "secs"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<12} {:>6}  {:<40} {:>5} {:>8} {:>10} {:>4}  {:>6.0}  {}",
            r.scenario,
            r.verdict.builds,
            r.ended(),
            r.kills,
            r.verdict.reclaims,
            r.verdict.duplicates,
            r.verdict.lost,
            r.secs,
            if r.pass() { "pass" } else { "FAIL" }
        );
    }
    for r in rows {
        if !r.verdict.violations.is_empty() {
            let _ = writeln!(
                out,
                "\n{}: {} violation(s)",
                r.scenario,
                r.verdict.violations.len()
            );
            for v in r.verdict.violations.iter().take(LISTED) {
                let _ = writeln!(out, "  - {v}");
            }
            if r.verdict.violations.len() > LISTED {
                let _ = writeln!(out, "  ... and {} more", r.verdict.violations.len() - LISTED);
            }
        }
        if !r.verdict.notes.is_empty() {
            let _ = writeln!(out, "\n{}: notes", r.scenario);
            for n in r.verdict.notes.iter().take(LISTED) {
                let _ = writeln!(out, "  - {n}");
            }
            if r.verdict.notes.len() > LISTED {
                let _ = writeln!(out, "  ... and {} more", r.verdict.notes.len() - LISTED);
            }
        }
    }
    out
}
