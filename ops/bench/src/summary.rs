//! The summary block printed at the end: a header, each part's lines in the order the parts
//! ran (each part's report prints its own through [`Summary`], in its module), "NOT MEASURED"
//! for a part that failed, the load average; and the exit status they come to.

use std::path::Path;

use crate::Part;

/// What a part's figures came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Every target of the part was met.
    pub targets_met: bool,
    /// Every figure was measured in full (admission: no answer other than 202).
    pub measured: bool,
}

impl Outcome {
    /// A part measured in full, its targets met or not.
    pub fn met(targets_met: bool) -> Self {
        Self {
            targets_met,
            measured: true,
        }
    }
}

/// A part's report: it prints its lines of the summary.
pub trait Summary {
    fn print(&self) -> Outcome;
}

/// A part's report, or why it could not be measured.
pub type Measured = Result<Box<dyn Summary>, String>;

/// Prints the summary block of `results` (each part with its report, or why it could not be
/// measured); returns the exit status.
pub fn print(results: &[(Part, Measured)], example: &Path) -> i32 {
    let mut measured = true;
    let mut targets_met = true;
    println!();
    let revision = std::env::var("KILN_BENCH_REVISION").unwrap_or_else(|_| "?".into());
    println!("== Kiln benchmark ({} cores, kiln {revision}) ==", cores());
    for (part, result) in results {
        match result {
            Ok(report) => {
                let outcome = report.print();
                targets_met &= outcome.targets_met;
                measured &= outcome.measured;
            }
            Err(e) => {
                measured = false;
                match part {
                    Part::Warm => println!("warm build  NOT MEASURED ({}): {e}", example.display()),
                    _ => println!("{:<12}NOT MEASURED: {e}", part.name()),
                }
            }
        }
    }
    println!("(load average at the end: {})", load_average());
    if !measured {
        1
    } else if !targets_met && std::env::var("KILN_BENCH_STRICT").is_ok_and(|v| v == "1") {
        3
    } else {
        0
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}
