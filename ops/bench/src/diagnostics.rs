//! Part `diagnostics`: how long reading a failed build's log takes. `parse` + `summary` of
//! kiln-builder's diagnostics on a 10,000-line failing log (install noise, then many tsc,
//! ESLint and esbuild errors, repeated from captures of real runs), timed in process over
//! [`RUNS`] runs after [`WARMUP`] untimed ones. Needs no service.

use std::path::Path;
use std::time::Instant;

use kiln_builder::diagnostics::{self, Context};
use kiln_shared::domain::Step;

use crate::stats::{self, median, percentile};
use crate::summary::{Outcome, Summary};

pub const LINES: usize = 10_000;
pub const RUNS: usize = 50;
const WARMUP: usize = 5;
/// The target: the median of `parse` + `summary`, in milliseconds.
pub const TARGET_MS: f64 = 20.0;

/// The project's folder in the captures.
const ROOT: &str = "/var/tmp/kiln-builds/01JTEST/work/01JTEST-s3cr3t/project";

/// The captures a log is made of (kiln-builder's unit tests parse each of them).
const CAPTURES: [&str; 5] = [
    include_str!("../../../builder/src/diagnostics/testdata/pnpm-install-ok.txt"),
    include_str!("../../../builder/src/diagnostics/testdata/tsc-chain-plain.txt"),
    include_str!("../../../builder/src/diagnostics/testdata/tsc-chain-pretty-color.txt"),
    include_str!("../../../builder/src/diagnostics/testdata/eslint-stylish.txt"),
    include_str!("../../../builder/src/diagnostics/testdata/vite-esbuild-syntax-error.txt"),
];

#[derive(Debug, Clone)]
pub struct Report {
    lines: usize,
    bytes: usize,
    /// Per run, milliseconds.
    samples: Vec<f64>,
    /// What the log parsed to (the same every run).
    kept: usize,
    total: usize,
}

impl Report {
    fn median(&self) -> f64 {
        median(&self.samples)
    }

    fn pass(&self) -> bool {
        self.median() <= TARGET_MS
    }
}

impl Summary for Report {
    fn print(&self) -> Outcome {
        println!(
            "diagnostics parse + summary of a {}-line failing log ({} KB, {} diagnostics kept of {})  median {:.2} ms  p95 {:.2} ms  ({} runs)  target median <= {TARGET_MS:.0} ms  {}",
            self.lines,
            self.bytes / 1024,
            self.kept,
            self.total,
            self.median(),
            percentile(&self.samples, 95.0),
            self.samples.len(),
            stats::verdict(self.pass())
        );
        Outcome::met(self.pass())
    }
}

/// A failing log of at least `lines` lines: the captures over and over, each round's errors
/// moved to other lines so they stay distinct diagnostics.
pub fn failing_log(lines: usize) -> String {
    let mut out = String::new();
    let (mut n, mut round) = (0, 0u32);
    while n < lines {
        for capture in CAPTURES {
            let moved = capture
                .replace("(3,9)", &format!("({},9)", 3 + round))
                .replace(":3:9 ", &format!(":{}:9 ", 3 + round))
                .replace("  3:7 ", &format!("  {}:7 ", 3 + round));
            for line in moved.lines() {
                out.push_str(line);
                out.push('\n');
                n += 1;
            }
        }
        round += 1;
    }
    out
}

pub fn run() -> anyhow::Result<Report> {
    let log = failing_log(LINES);
    let roots = [Path::new(ROOT)];
    let cx = Context {
        step: Step::Build,
        roots: &roots,
        package_json: None,
        dir: "",
    };
    let mut samples = Vec::with_capacity(RUNS);
    let (mut kept, mut total) = (0, 0);
    for i in 0..WARMUP + RUNS {
        let started = Instant::now();
        let parsed = diagnostics::parse(&cx, &log);
        let summary = diagnostics::summary(&parsed.diagnostics, &log);
        let took = stats::ms(started.elapsed());
        anyhow::ensure!(
            !summary.is_empty() && !parsed.diagnostics.is_empty(),
            "the log parsed to nothing"
        );
        (kept, total) = (parsed.diagnostics.len(), parsed.total);
        if i >= WARMUP {
            eprintln!("[bench] diagnostics run {}: {took:.2} ms", i - WARMUP + 1);
            samples.push(took);
        }
    }
    Ok(Report {
        lines: log.lines().count(),
        bytes: log.len(),
        samples,
        kept,
        total,
    })
}
