//! `kiln watch <buildId>` (and `kiln submit --wait`): a live progress bar from the build's
//! event stream, its log lines with `--logs`, and reconnection with `Last-Event-ID` whenever
//! a connection drops, so nothing is missed or shown twice.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::client::Client;

/// One Server-Sent Events message.
#[derive(Debug, Clone, Default)]
struct Message {
    id: Option<String>,
    event: String,
    data: String,
}

/// Splits a byte stream into SSE messages (comments dropped).
#[derive(Debug, Default)]
struct Parser {
    buf: String,
}

impl Parser {
    fn push(&mut self, chunk: &[u8]) -> Vec<Message> {
        self.buf.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some(end) = self.buf.find("\n\n") {
            let raw: String = self.buf.drain(..end + 2).collect();
            let mut m = Message::default();
            for line in raw.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    m.id = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    m.event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    m.data = v.to_owned();
                } else if line == "data:" {
                    m.data.clear();
                }
            }
            if !m.event.is_empty() {
                out.push(m);
            }
        }
        out
    }
}

/// Follows an SSE path to its end, reconnecting after a dropped connection from the last id
/// seen. `on` returns true when the stream is done. Gives up after `MAX_FAILURES` connection
/// failures in a row.
async fn follow(client: &Client, path: &str, mut on: impl FnMut(&Message) -> bool) -> anyhow::Result<()> {
    const MAX_FAILURES: u32 = 20;
    let mut last_id: Option<String> = None;
    let mut failures = 0;
    loop {
        let attempt = async {
            let mut res = client.stream(path, last_id.as_deref()).await?;
            let mut parser = Parser::default();
            while let Some(chunk) = res.chunk().await.context("the stream broke")? {
                failures = 0;
                for m in parser.push(&chunk) {
                    if m.id.is_some() {
                        last_id = m.id.clone();
                    }
                    if on(&m) {
                        return Ok::<bool, anyhow::Error>(true);
                    }
                }
            }
            Ok(false) // the server ended it without a final message
        };
        match attempt.await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) if failures < MAX_FAILURES && !gives_up(&e) => {
                failures += 1;
                eprintln!("kiln: {e:#}; reconnecting");
            }
            Err(e) => return Err(e),
        }
        let backoff = Duration::from_millis(250 * u64::from(failures.clamp(1, 20)));
        tokio::time::sleep(backoff).await;
    }
}

/// An answer whose problem will not get better by asking again (a missing build, bad
/// credentials...); a rate limit, a stream cap, or an API or dependency failing is tried again
/// with the others' backoff, and so is an error that is no answer (the connection broke).
fn gives_up(e: &anyhow::Error) -> bool {
    e.chain()
        .find_map(|c| c.downcast_ref::<crate::client::ApiFailure>())
        .is_some_and(|failure| !failure.is_transient())
}

/// What is on the terminal: a progress bar on stderr (when it is a terminal) and log lines on
/// stdout; a log line clears the bar first, then the bar is drawn again.
struct Screen {
    tty: bool,
    json: bool,
    bar: Option<String>,
    started: Instant,
}

impl Screen {
    fn event(&mut self, e: &Value) {
        if self.json {
            println!("{e}");
            return;
        }
        let progress = e["progress"].as_i64().unwrap_or(0);
        let kind = e["type"].as_str().unwrap_or("?");
        let detail = match kind {
            "build_failed" => format!(
                "{kind}: {} failed: {}",
                e["data"]["step"].as_str().unwrap_or("?"),
                first_line(e["data"]["reason"].as_str().unwrap_or(""))
            ),
            "deploy_completed" => format!("{kind}: {}", e["data"]["previewUrl"].as_str().unwrap_or("")),
            _ => kind.to_owned(),
        };
        let secs = self.started.elapsed().as_secs_f64();
        if self.tty {
            let filled = (progress.clamp(0, 100) / 5) as usize;
            let bar = format!(
                "[{}{}] {progress:>3}%  {detail}  ({secs:.1}s)",
                "#".repeat(filled),
                "-".repeat(20 - filled)
            );
            eprint!("\r\x1b[2K{bar}");
            let _ = std::io::stderr().flush();
            self.bar = Some(bar);
        } else {
            eprintln!("[{secs:>6.1}s] {progress:>3}%  {detail}");
        }
    }

    fn log(&mut self, line: &str) {
        if self.tty && self.bar.is_some() {
            eprint!("\r\x1b[2K");
        }
        println!("{line}");
        if let (true, Some(bar)) = (self.tty, &self.bar) {
            eprint!("{bar}");
            let _ = std::io::stderr().flush();
        }
    }

    fn done(&mut self) {
        if self.tty && self.bar.take().is_some() {
            eprintln!();
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

const FINAL: [&str; 4] = [
    "deploy_completed",
    "build_failed",
    "build_cancelled",
    "build_superseded",
];

/// Watches a build until it ends; prints the build; true when it deployed.
pub async fn watch(client: &Client, id: &str, logs: bool, json: bool) -> anyhow::Result<bool> {
    let screen = Arc::new(Mutex::new(Screen {
        tty: std::io::stderr().is_terminal() && !json,
        json,
        bar: None,
        started: Instant::now(),
    }));
    let log_task = logs.then(|| {
        let (client, id, screen) = (client.clone(), id.to_owned(), screen.clone());
        tokio::spawn(async move {
            follow(
                &client,
                &format!("/v1/builds/{id}/logs?follow=true"),
                |m| match m.event.as_str() {
                    "line" => {
                        screen.lock().expect("screen lock").log(&m.data);
                        false
                    }
                    _ => true, // end (or error)
                },
            )
            .await
        })
    });
    let events_path = format!("/v1/builds/{id}/events/stream");
    let mut ended = false;
    follow(client, &events_path, |m| {
        let Ok(event) = serde_json::from_str::<Value>(&m.data) else {
            return false;
        };
        screen.lock().expect("screen lock").event(&event);
        ended = FINAL.contains(&m.event.as_str());
        ended
    })
    .await?;
    if let Some(task) = log_task {
        // The log ends just before the final event; wait a moment for its last lines.
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(Err(e))) => eprintln!("kiln: the log stream failed: {e:#}"),
            Ok(_) => {}
            Err(_) => eprintln!("kiln: the log did not end with the build"),
        }
    }
    screen.lock().expect("screen lock").done();
    let build = client.ok("GET", &format!("/v1/builds/{id}"), None).await?;
    if !ended && build["status"] != "deployed" && build["status"] != "failed" {
        anyhow::bail!("the event stream ended before the build did");
    }
    if json {
        println!("{build}");
    } else {
        crate::print_build(&build);
    }
    Ok(build["status"] == "deployed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_across_chunks_come_out_whole() {
        let mut p = Parser::default();
        assert!(p.push(b"id: 1\nevent: line\nda").is_empty());
        let got = p.push(b"ta: hello\n\n: heartbeat\n\nid: 2\nevent: line\ndata:\n\n");
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].id.as_deref(), got[0].data.as_str()), (Some("1"), "hello"));
        assert_eq!((got[1].id.as_deref(), got[1].data.as_str()), (Some("2"), ""));
    }
}
