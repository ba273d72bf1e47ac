//! PLACEHOLDER until the parsers land: the interface the stations call.

use std::path::Path;

use kiln_shared::domain::{Diagnostic, Step};

pub struct Context<'a> {
    pub step: Step,
    pub roots: &'a [&'a Path],
    pub package_json: Option<&'a str>,
}

pub struct Parsed {
    pub diagnostics: Vec<Diagnostic>,
    pub total: usize,
}

pub fn parse(_cx: &Context, _output: &str) -> Parsed {
    Parsed {
        diagnostics: Vec::new(),
        total: 0,
    }
}

pub fn scrub(text: &str, roots: &[&Path]) -> String {
    let mut out = text.to_owned();
    for root in roots {
        let root = root.to_string_lossy();
        out = out.replace(&format!("{root}/"), "").replace(root.as_ref(), ".");
    }
    out
}

pub fn summary(diagnostics: &[Diagnostic], step_tail: &str) -> String {
    if diagnostics.is_empty() {
        let lines: Vec<&str> = step_tail.lines().collect();
        return lines[lines.len().saturating_sub(15)..].join("\n");
    }
    diagnostics
        .iter()
        .take(5)
        .map(Diagnostic::one_line)
        .collect::<Vec<_>>()
        .join("\n")
}
