//! A failed step's own output turned into [`Diagnostic`]s a program can act on: which tool said
//! what, about which file (relative to the project's root), at which line and column.
//!
//! A pure library: [`parse`] takes the output (ANSI colours, Windows line endings and other
//! tools' lines included) and what is known of the build ([`Context`]); [`summary`] makes the
//! short human `error` of a failed build; [`scrub`] takes the builder's paths out of any text.
//! One submodule per tool family, each recognising only the lines it is sure of: output no
//! parser knows gives no diagnostics (a wrong diagnostic is worse than none), and the summary
//! then falls back to the tail of the output.
//!
//! - `text`: the output cleaned (colours, line endings) and paths made relative or scrubbed.
//! - `tsc`: TypeScript's `file(l,c): error TSxxxx` and pretty forms (also vue-tsc).
//! - `bundler`: Vite, Rollup and esbuild (unresolved import, syntax error, missing export).
//! - `next`, `svelte` (and svelte-check), `astro`, `nuxt`: the frameworks' own error lines.
//! - `eslint`: ESLint's stylish and JSON formats.
//! - `pnpm`: `ERR_PNPM_*` of an install, pointed at package.json's entry or the lockfile.
//! - `node`: an uncaught error's stack trace, at its first frame inside the project.
//! - `summary`: the short human `error`.

mod astro;
mod bundler;
mod eslint;
mod next;
mod node;
mod nuxt;
mod pnpm;
mod summary;
mod svelte;
mod text;
mod tsc;

use std::collections::HashSet;
use std::path::Path;

use kiln_shared::domain::{Diagnostic, Severity, Step, MAX_DIAGNOSTICS, MAX_MESSAGE_BYTES};

pub use summary::summary;
pub use text::scrub;

/// What the parsers know about the build besides its output.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The station whose output this is; every diagnostic carries it.
    pub step: Step,
    /// Absolute paths the project folder is known by (the builder's path, and the path the
    /// sandbox shows it at). A file under one becomes relative to the project; any of these
    /// prefixes anywhere in a message is removed.
    pub roots: &'a [&'a Path],
    /// The folder the step ran in, relative to the top of the tree (`""` at the top): a
    /// relative path a tool printed is taken from it, so that every diagnostic's file is
    /// relative to the top of the tree (`apps/web/src/App.tsx` for an app in `apps/web`).
    pub dir: &'a str,
    /// package.json's text, to point pnpm's errors at the dependency's line.
    pub package_json: Option<&'a str>,
}

/// What [`parse`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// At most [`MAX_DIAGNOSTICS`], errors first (then warnings), each tool's in the order it
    /// reported them; without duplicates (the same file, line, column and message).
    pub diagnostics: Vec<Diagnostic>,
    /// How many distinct diagnostics there were before the cut.
    pub total: usize,
}

/// The diagnostics in `output`, a failed (or checked) step's own output.
pub fn parse(cx: &Context, output: &str) -> Parsed {
    let clean = text::clean(output);
    let lines: Vec<&str> = clean.lines().collect();
    let mut sink = Sink::new(cx);
    pnpm::parse(&lines, &mut sink);
    tsc::parse(&lines, &mut sink);
    eslint::parse(&clean, &lines, &mut sink);
    bundler::parse(&lines, &mut sink);
    next::parse(&lines, &mut sink);
    svelte::parse(&lines, &mut sink);
    astro::parse(&lines, &mut sink);
    nuxt::parse(&lines, &mut sink);
    if sink.found.is_empty() {
        // A build script's own crash, only when no tool said more.
        node::parse(&lines, &mut sink);
    }
    sink.finish()
}

/// Where the parsers put what they found: each diagnostic made relative, scrubbed and cut to
/// size, and duplicates (the same place and message, said twice or by two tools) dropped.
struct Sink<'a> {
    cx: &'a Context<'a>,
    found: Vec<Diagnostic>,
    seen: HashSet<Place>,
}

/// What makes two diagnostics the same: file, line, column and message.
type Place = (Option<String>, Option<u32>, Option<u32>, String);

/// One diagnostic as a parser reports it, before it is made relative and scrubbed.
#[derive(Debug, Default)]
struct Found<'t> {
    tool: &'static str,
    warning: bool,
    /// As the tool printed it: absolute, relative, `./`-prefixed or a `file://` URL.
    file: Option<&'t str>,
    line: Option<u32>,
    column: Option<u32>,
    code: Option<String>,
    message: String,
}

impl<'a> Sink<'a> {
    fn new(cx: &'a Context<'a>) -> Self {
        Self {
            cx,
            found: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// The project-relative form of a path a tool printed (`None`: outside the project).
    fn relative(&self, file: &str) -> Option<String> {
        let trimmed = file.trim();
        if self.cx.dir.is_empty() || trimmed.starts_with('/') || trimmed.starts_with("file://") {
            return text::relative(file, self.cx.roots);
        }
        text::relative(&format!("{}/{trimmed}", self.cx.dir), self.cx.roots)
    }

    fn push(&mut self, f: Found) {
        let file = f.file.and_then(|p| self.relative(p));
        let (line, column) = if file.is_some() {
            (f.line.filter(|l| *l > 0), f.column.filter(|c| *c > 0))
        } else {
            (None, None)
        };
        let message = truncate(scrub(f.message.trim(), self.cx.roots), MAX_MESSAGE_BYTES);
        if message.is_empty() {
            return;
        }
        let key = (file.clone(), line, column, message.clone());
        if !self.seen.insert(key) {
            return;
        }
        self.found.push(Diagnostic {
            step: self.cx.step,
            tool: f.tool.to_owned(),
            severity: if f.warning {
                Severity::Warning
            } else {
                Severity::Error
            },
            file,
            line,
            column,
            code: f.code,
            message,
        });
    }

    fn finish(mut self) -> Parsed {
        // Stable: errors first, each kind in the order reported.
        self.found.sort_by_key(|d| d.severity != Severity::Error);
        let total = self.found.len();
        self.found.truncate(MAX_DIAGNOSTICS);
        Parsed {
            diagnostics: self.found,
            total,
        }
    }
}

/// `s` cut to at most `max` bytes, at a character boundary, marked with `…` when cut.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push('…');
    s
}

/// A line or column number as printed.
fn number(s: &str) -> Option<u32> {
    s.parse().ok()
}

#[cfg(test)]
mod tests;
