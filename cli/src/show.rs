//! How results are printed for people: a build's summary, a coloured diff.

use serde_json::Value;

/// Colours a unified diff for a terminal.
pub(crate) fn colour_diff(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.lines() {
        let code = if line.starts_with("diff --git") || line.starts_with("+++") || line.starts_with("---") {
            "1"
        } else if line.starts_with('+') {
            "32"
        } else if line.starts_with('-') {
            "31"
        } else if line.starts_with("@@") {
            "36"
        } else {
            ""
        };
        if code.is_empty() {
            out.push_str(line);
        } else {
            out.push_str(&format!("\x1b[{code}m{line}\x1b[0m"));
        }
        out.push('\n');
    }
    out
}

pub(crate) fn print_build(b: &Value) {
    println!("build    {}", b["id"].as_str().unwrap_or("?"));
    println!(
        "project  {}/{}",
        b["userId"].as_str().unwrap_or("?"),
        b["projectId"].as_str().unwrap_or("?")
    );
    println!("status   {}", b["status"].as_str().unwrap_or("?"));
    if let Some(url) = b["previewUrl"].as_str() {
        println!("preview  {url}");
    }
    if let Some(url) = b["latestUrl"].as_str() {
        println!("latest   {url}");
    }
    if let Some(ms) = b["metrics"]["totalMs"].as_i64() {
        println!("took     {:.1} s", ms as f64 / 1000.0);
    }
    if let Some(e) = b["error"].as_str() {
        println!("failed   at {}: {e}", b["failedStep"].as_str().unwrap_or("?"));
    }
}
