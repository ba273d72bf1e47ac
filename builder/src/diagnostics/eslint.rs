//! ESLint's stylish format (a file's path on a line of its own, then `  3:7  error  message
//! rule-id` lines) and its JSON format (`eslint -f json`: an array of `{filePath, messages}`).

use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use super::{number, Found, Sink};

/// A file's header: an absolute path alone on its line.
static HEADER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^/\S(?:.*\S)?$").expect("a valid regex"));

/// `  3:7   error    'unused' is assigned a value but never used  no-unused-vars`: the rule is
/// the last column, after two spaces or more (none for a parsing error).
static ENTRY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s+(?P<line>\d+):(?P<col>\d+)\s+(?P<sev>error|warning)\s+(?P<msg>.+?)(?:\s{2,}(?P<rule>[@\w/-]+))?\s*$")
        .expect("a valid regex")
});

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileResult {
    file_path: String,
    #[serde(default)]
    messages: Vec<Message>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    rule_id: Option<String>,
    severity: u8,
    message: String,
    line: Option<u32>,
    column: Option<u32>,
}

pub(super) fn parse(text: &str, lines: &[&str], sink: &mut Sink) {
    json(text, sink);
    stylish(lines, sink);
}

fn stylish(lines: &[&str], sink: &mut Sink) {
    let mut file: Option<&str> = None;
    for line in lines {
        if line.trim().is_empty() {
            file = None;
        } else if line.starts_with('/') {
            file = HEADER.is_match(line).then(|| line.trim());
        } else if let Some(c) = file.and_then(|_| ENTRY.captures(line)) {
            let f = file.unwrap_or_default();
            sink.push(Found {
                tool: "eslint",
                warning: &c["sev"] == "warning",
                file: Some(f),
                line: number(&c["line"]),
                column: number(&c["col"]),
                code: c.name("rule").map(|m| m.as_str().to_owned()),
                message: c["msg"].to_owned(),
            });
        } else {
            file = None;
        }
    }
}

/// The JSON report: one line starting with `[{"filePath"` (other tools' lines around it).
fn json(text: &str, sink: &mut Sink) {
    let mut from = 0;
    while let Some(at) = text[from..].find("[{\"filePath\"") {
        let start = from + at;
        let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Vec<FileResult>>();
        match stream.next() {
            Some(Ok(results)) => {
                for r in &results {
                    for m in &r.messages {
                        sink.push(Found {
                            tool: "eslint",
                            warning: m.severity < 2,
                            file: Some(&r.file_path),
                            line: m.line,
                            column: m.column,
                            code: m.rule_id.clone(),
                            message: m.message.clone(),
                        });
                    }
                }
                from = start + stream.byte_offset();
            }
            _ => from = start + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use kiln_shared::domain::{Severity, Step};

    use super::super::tests::{assert_clean, parse_as, rows};

    const MAIN: Option<&str> = Some("src/main.js");

    #[test]
    fn stylish() {
        let want = [
            (
                "eslint",
                MAIN,
                Some(3),
                Some(7),
                Some("no-unused-vars"),
                "'unused' is assigned a value but never used",
            ),
            (
                "eslint",
                MAIN,
                Some(5),
                Some(52),
                Some("no-undef"),
                "'naem' is not defined",
            ),
            (
                "eslint",
                MAIN,
                Some(4),
                Some(1),
                Some("no-console"),
                "Unexpected console statement",
            ),
        ];
        let parsed = parse_as(Step::Check, include_str!("testdata/eslint-stylish.txt"), None);
        assert_eq!(rows(&parsed), want);
        assert_eq!(parsed.diagnostics[2].severity, Severity::Warning);
        assert_clean(&parsed);
        let coloured = parse_as(
            Step::Check,
            include_str!("testdata/eslint-stylish-color.txt"),
            None,
        );
        assert_eq!(rows(&coloured), want);
    }

    #[test]
    fn stylish_parsing_error_has_no_rule() {
        let parsed = parse_as(
            Step::Check,
            include_str!("testdata/eslint-stylish-parse-error.txt"),
            None,
        );
        assert_eq!(
            rows(&parsed)[0],
            (
                "eslint",
                Some("src/broken.js"),
                Some(1),
                Some(7),
                None,
                "Parsing error: Unexpected token :"
            )
        );
        assert_eq!(parsed.total, 4);
    }

    #[test]
    fn json() {
        let parsed = parse_as(Step::Check, include_str!("testdata/eslint-json.txt"), None);
        assert_eq!(
            rows(&parsed),
            [
                (
                    "eslint",
                    MAIN,
                    Some(3),
                    Some(7),
                    Some("no-unused-vars"),
                    "'unused' is assigned a value but never used."
                ),
                (
                    "eslint",
                    MAIN,
                    Some(5),
                    Some(52),
                    Some("no-undef"),
                    "'naem' is not defined."
                ),
                (
                    "eslint",
                    MAIN,
                    Some(4),
                    Some(1),
                    Some("no-console"),
                    "Unexpected console statement."
                ),
            ]
        );
        assert_eq!(parsed.diagnostics[2].severity, Severity::Warning);
        assert_clean(&parsed);
    }
}
