//! What a failed build (or a build's checks) says went wrong, in a form a program can act on:
//! the tool that said it, where (a path relative to the project's root, never a builder's
//! path), and its message.

use serde::{Deserialize, Serialize};

use super::status::Step;

/// At most this many diagnostics are kept on a build; `diagnosticsTotal` counts them all.
pub const MAX_DIAGNOSTICS: usize = 50;

/// At most this many bytes of a diagnostic's message are kept.
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// One problem a tool reported (or Kiln's own refusal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostic {
    /// The station it came from (`install`, `check`, `build`, `output`…).
    pub step: Step,
    /// The tool that reported it: `tsc`, `vite`, `rollup`, `esbuild`, `next`, `sveltekit`,
    /// `astro`, `nuxt`, `svelte-check`, `eslint`, `pnpm`, `node` or `kiln`.
    pub tool: String,
    pub severity: Severity,
    /// The file, relative to the project's root (`src/App.tsx`); `None` when the problem is
    /// not in one file (or the tool named a file outside the project).
    pub file: Option<String>,
    /// 1-based.
    pub line: Option<u32>,
    /// 1-based.
    pub column: Option<u32>,
    /// The tool's own code for it (`TS2322`, `ERR_PNPM_NO_MATCHING_VERSION`, `no-unused-vars`).
    pub code: Option<String>,
    /// What is wrong, one line or a few, without ANSI colours or builder paths.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

impl Diagnostic {
    /// A diagnostic of Kiln's own (a refusal, a limit passed), not tied to a file.
    pub fn kiln(step: Step, code: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            step,
            tool: "kiln".to_owned(),
            severity: Severity::Error,
            file: None,
            line: None,
            column: None,
            code: Some(code.to_owned()),
            message: clipped(message.into()),
        }
    }

    /// `file:line:col message` (the parts it has), as the CLI prints it.
    pub fn one_line(&self) -> String {
        let mut at = String::new();
        if let Some(file) = &self.file {
            at.push_str(file);
            if let Some(line) = self.line {
                at.push_str(&format!(":{line}"));
                if let Some(column) = self.column {
                    at.push_str(&format!(":{column}"));
                }
            }
            at.push(' ');
        }
        let code = self
            .code
            .as_deref()
            .map(|c| format!(" [{c}]"))
            .unwrap_or_default();
        let first = self.message.lines().next().unwrap_or_default();
        format!("{at}{first}{code}")
    }
}

/// `message` cut to at most [`MAX_MESSAGE_BYTES`] (on a character boundary), marked with `…`.
pub fn clipped(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES - '…'.len_utf8();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_says_where_then_what() {
        let mut d = Diagnostic::kiln(Step::Build, "TS2322", "Type 'number' is not assignable\nmore");
        assert_eq!(d.one_line(), "Type 'number' is not assignable [TS2322]");
        d.file = Some("src/App.tsx".into());
        d.line = Some(3);
        d.column = Some(7);
        assert_eq!(
            d.one_line(),
            "src/App.tsx:3:7 Type 'number' is not assignable [TS2322]"
        );
    }

    #[test]
    fn long_messages_are_clipped_on_a_character_boundary() {
        let m = clipped("é".repeat(MAX_MESSAGE_BYTES));
        assert!(m.len() <= MAX_MESSAGE_BYTES && m.ends_with('…'), "{}", m.len());
        assert_eq!(clipped("short".into()), "short");
    }
}
