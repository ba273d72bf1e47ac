//! How results are printed for people: tables that fit the terminal (`comfy-table`), colours
//! through `anstream` (none with `NO_COLOR` or when stdout is not a terminal), times as
//! relative ages ("3m ago"), a build's summary and a coloured diff. `--json` prints the API's
//! own JSON instead, with its absolute times.

use anstream::{print, println};
use anstyle::{AnsiColor, Style};
use chrono::{DateTime, Utc};
use comfy_table::{ColumnConstraint, ContentArrangement, Table};
use kiln_shared::domain::Diagnostic;
use serde_json::Value;

/// One line on stdout.
pub(crate) fn line(text: &str) {
    println!("{text}");
}

/// Text on stdout as it is.
pub(crate) fn text(text: &str) {
    print!("{text}");
}

/// A value rendered with a style (removed again by `anstream` when colours are off).
pub(crate) fn styled(text: &str, style: Style) -> String {
    format!("{style}{text}{style:#}")
}

/// The colour of a build status.
fn status_style(status: &str) -> Style {
    let colour = match status {
        "deployed" => AnsiColor::Green,
        "failed" => AnsiColor::Red,
        "cancelled" | "superseded" => AnsiColor::Yellow,
        "queued" | "running" => AnsiColor::Cyan,
        _ => return Style::new(),
    };
    Style::new().fg_color(Some(colour.into()))
}

/// A status, coloured.
pub(crate) fn status(status: &str) -> String {
    styled(status, status_style(status))
}

/// How long ago `time` (RFC 3339) was, as `vercel ls` says it: "12s ago", "3m ago", "5h ago",
/// "2d ago"; the local date after 30 days; "-" for none.
pub(crate) fn ago(time: &Value, now: DateTime<Utc>) -> String {
    let Some(then) = time.as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()) else {
        return "-".into();
    };
    let secs = (now - then.with_timezone(&Utc)).num_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3_600 => format!("{}m ago", secs / 60),
        3_600..86_400 => format!("{}h ago", secs / 3_600),
        86_400..2_592_000 => format!("{}d ago", secs / 86_400),
        _ => then.with_timezone(&chrono::Local).format("%Y-%m-%d").to_string(),
    }
}

/// Prints rows under a header, in columns that fit the terminal's width: on a narrow terminal
/// the cells of column `wraps` (a name, a description) wrap, the others (ids, statuses, ages)
/// keep their width; a pipe gets whole lines.
pub(crate) fn table(header: &[&str], wraps: usize, rows: Vec<Vec<String>>) {
    let mut t = Table::new();
    t.load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    for row in rows {
        t.add_row(row);
    }
    for (n, column) in t.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        if n != wraps {
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    for l in t.lines() {
        line(l.trim_end());
    }
}

/// Where the next page of a list starts, said on stderr when there is one.
pub(crate) fn more(next: Option<&str>, command: &str) {
    if let Some(next) = next {
        eprintln!("more: {command} --before {next} (or --all)");
    }
}

/// Colours a unified diff (plain again when colours are off).
pub(crate) fn colour_diff(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.lines() {
        let style = if line.starts_with("diff --git") || line.starts_with("+++") || line.starts_with("---") {
            Style::new().bold()
        } else if line.starts_with('+') {
            AnsiColor::Green.on_default()
        } else if line.starts_with('-') {
            AnsiColor::Red.on_default()
        } else if line.starts_with("@@") {
            AnsiColor::Cyan.on_default()
        } else {
            Style::new()
        };
        out.push_str(&styled(line, style));
        out.push('\n');
    }
    out
}

/// A build's summary.
pub(crate) fn print_build(b: &Value) {
    println!("build    {}", b["id"].as_str().unwrap_or("?"));
    println!(
        "project  {}/{}",
        b["userId"].as_str().unwrap_or("?"),
        b["projectId"].as_str().unwrap_or("?")
    );
    println!("status   {}", status(b["status"].as_str().unwrap_or("?")));
    if let Some(url) = b["previewUrl"].as_str() {
        println!("preview  {url}");
    }
    if let Some(url) = b["latestUrl"].as_str() {
        println!("latest   {url}");
    }
    if let Some(ms) = b["metrics"]["totalMs"].as_i64() {
        println!("took     {:.1} s", ms as f64 / 1000.0);
    }
    if let Some(from) = b["reusedFrom"].as_str() {
        println!("reused from {from} (identical: nothing was built; --force builds anyway)");
    }
    if let Some(settings) = build_settings(b) {
        println!("settings {settings}");
    }
    if let Some(e) = b["error"].as_str() {
        let step = b["failedStep"].as_str().unwrap_or("?");
        // Kiln's own diagnostic repeats the error; a tool's says where.
        let from_tools = b["diagnostics"]
            .as_array()
            .is_some_and(|all| all.iter().any(|d| d["tool"] != "kiln" || d["file"].is_string()));
        let shown = if from_tools { diagnostics(b) } else { Vec::new() };
        if shown.is_empty() {
            println!("failed   at {step}: {e}");
        } else {
            // The diagnostics say it better than the summary that repeats them.
            println!("failed   at {step}: {}", e.lines().next().unwrap_or_default());
            for d in shown {
                println!("         {d}");
            }
        }
    } else {
        // A deployed build's checks in warn mode.
        for d in diagnostics(b) {
            println!("warning  {d}");
        }
    }
}

/// The longest settings line `kiln status` prints; `kiln status --json` has them all.
const SHOWN_SETTINGS_CHARS: usize = 120;

/// The build settings a build ran with that change where and how it builds, as
/// `rootDir=apps/web buildCommand="node build.mjs"`, when there are some and they are short.
fn build_settings(b: &Value) -> Option<String> {
    let shown: Vec<String> = ["rootDir", "installCommand", "buildCommand", "outputDir"]
        .iter()
        .filter_map(|name| {
            let value = b["settings"][name].as_str()?;
            Some(match value.contains(' ') {
                true => format!("{name}={value:?}"),
                false => format!("{name}={value}"),
            })
        })
        .collect();
    let line = shown.join(" ");
    (!line.is_empty() && line.chars().count() <= SHOWN_SETTINGS_CHARS).then_some(line)
}

/// At most this many diagnostics are printed; `kiln status --json` has them all.
const SHOWN_DIAGNOSTICS: usize = 10;

/// A build's diagnostics as `file:line:col message [code]`, and a last line counting those
/// not shown.
pub(crate) fn diagnostics(b: &Value) -> Vec<String> {
    let Some(all) = b["diagnostics"].as_array() else {
        return Vec::new();
    };
    let mut lines: Vec<String> = all
        .iter()
        .filter_map(|d| serde_json::from_value::<Diagnostic>(d.clone()).ok())
        .take(SHOWN_DIAGNOSTICS)
        .map(|d| d.one_line())
        .collect();
    let total = b["diagnosticsTotal"].as_u64().unwrap_or(all.len() as u64) as usize;
    if total > lines.len() {
        lines.push(format!("… and {} more", total - lines.len()));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_build_settings_print_on_one_line() {
        let b = serde_json::json!({ "settings": { "rootDir": "apps/web", "buildCommand": "node build.mjs",
                                                  "checks": { "lint": "warn" } } });
        assert_eq!(
            build_settings(&b).as_deref(),
            Some(r#"rootDir=apps/web buildCommand="node build.mjs""#)
        );
        assert_eq!(build_settings(&serde_json::json!({})), None);
        let long = serde_json::json!({ "settings": { "buildCommand": "x".repeat(200) } });
        assert_eq!(build_settings(&long), None);
    }

    #[test]
    fn diagnostics_print_as_file_line_col_message() {
        let b = serde_json::json!({
            "diagnosticsTotal": 12,
            "diagnostics": [
                {"step": "build", "tool": "tsc", "severity": "error", "file": "src/App.tsx", "line": 3, "column": 7, "code": "TS2322",
                 "message": "Type 'number' is not assignable to type 'string'."},
                {"step": "install", "tool": "pnpm", "severity": "error", "file": "package.json", "line": 9, "column": null, "code": null, "message": "no version\nmore"},
                {"step": "output", "tool": "kiln", "severity": "error", "file": null, "line": null, "column": null, "code": "needs_server", "message": "needs a server"},
            ]
        });
        assert_eq!(
            diagnostics(&b),
            [
                "src/App.tsx:3:7 Type 'number' is not assignable to type 'string'. [TS2322]",
                "package.json:9 no version",
                "needs a server [needs_server]",
                "… and 9 more",
            ]
        );
        assert!(diagnostics(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn ages_are_relative_and_short() {
        let now: DateTime<Utc> = "2026-01-31T12:00:00Z".parse().unwrap();
        let at = |t: &str| ago(&Value::from(t), now);
        assert_eq!(at("2026-01-31T11:59:48Z"), "12s ago");
        assert_eq!(at("2026-01-31T11:57:00+00:00"), "3m ago");
        assert_eq!(at("2026-01-31T07:00:00Z"), "5h ago");
        assert_eq!(at("2026-01-29T12:00:00Z"), "2d ago");
        assert_eq!(at("2026-01-31T12:00:05Z"), "0s ago", "a clock ahead is now");
        assert_eq!(ago(&Value::Null, now), "-");
        assert!(at("2025-06-01T12:00:00Z").starts_with("2025-0"));
    }

    #[test]
    fn a_diff_is_coloured_by_line() {
        let coloured = colour_diff("--- a/x\n+new\n-old\n same\n");
        assert!(coloured.contains("\x1b[32m+new"), "{coloured:?}");
        assert!(coloured.contains("\x1b[31m-old"), "{coloured:?}");
        assert!(coloured.contains(" same"), "{coloured:?}");
    }
}
