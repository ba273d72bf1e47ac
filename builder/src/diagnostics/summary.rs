//! The short human `error` of a failed build: its first diagnostics as `file:line:col
//! message`, or (none parsed) the last lines of the failing step's own output; never an ANSI
//! code or a builder path, and at most [`MAX_SUMMARY_BYTES`].

use kiln_shared::domain::Diagnostic;

use super::text;

/// At most this many diagnostics are named in a summary.
pub const SUMMARY_DIAGNOSTICS: usize = 5;
/// At most this many lines of output make a summary when no diagnostic was parsed.
pub const SUMMARY_LINES: usize = 15;
/// A summary's largest size.
pub const MAX_SUMMARY_BYTES: usize = 1536;

/// The summary of a failure: the first diagnostics (and how many more there are), or the
/// last lines of `step_tail` (the failing step's own output; the caller should have passed it
/// through [`scrub`](super::scrub) with its roots, and any path into a builder's workspace
/// left is scrubbed here too).
pub fn summary(diagnostics: &[Diagnostic], step_tail: &str) -> String {
    if diagnostics.is_empty() {
        return tail(step_tail);
    }
    let shown = diagnostics.len().min(SUMMARY_DIAGNOSTICS);
    let mut out: Vec<String> = diagnostics[..shown].iter().map(Diagnostic::one_line).collect();
    if diagnostics.len() > shown {
        out.push(format!("(and {} more)", diagnostics.len() - shown));
    }
    let out = text::scrub(&text::clean(&out.join("\n")), &[]);
    head_bytes(&out, MAX_SUMMARY_BYTES)
}

/// The last non-blank lines of `output`, at most [`MAX_SUMMARY_BYTES`] of them (the last ones).
fn tail(output: &str) -> String {
    let clean = text::scrub(&text::clean(output), &[]);
    let lines: Vec<&str> = clean
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let mut kept: Vec<&str> = Vec::new();
    let mut size = 0;
    for line in lines.iter().rev().take(SUMMARY_LINES) {
        if size + line.len() + 1 > MAX_SUMMARY_BYTES {
            if kept.is_empty() {
                kept.push(tail_bytes(line, MAX_SUMMARY_BYTES));
            }
            break;
        }
        size += line.len() + 1;
        kept.push(line);
    }
    kept.reverse();
    kept.join("\n")
}

/// At most `max` bytes of the start of `s`, cut at a line (or a character) boundary.
fn head_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let cut = &s[..end];
    cut.rfind('\n').map_or(cut, |n| &cut[..n]).to_owned()
}

/// At most `max` bytes of the end of `s`, cut at a character boundary.
fn tail_bytes(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}
