//! `kiln watch <buildId>` (and `kiln submit --wait`, `kiln logs --follow`): a live progress
//! bar from the build's event stream (`indicatif`, on stderr when it is a terminal; one line
//! per event otherwise), its log lines on stdout with `--logs`, printed above the bar.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::client::{path, Client};
use crate::output;
use crate::sse::follow;

/// What is on the terminal: a progress bar on stderr (hidden when it is not a terminal, where
/// each event is a line instead) and log lines on stdout, printed above the bar.
struct Screen {
    json: bool,
    bar: ProgressBar,
    started: Instant,
}

impl Screen {
    fn new(json: bool) -> Self {
        let bar = if std::io::stderr().is_terminal() && !json {
            let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:24.cyan/blue} {pos:>3}%  {wide_msg}  ({elapsed})")
                    .expect("a valid template")
                    .progress_chars("##-"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        Screen {
            json,
            bar,
            started: Instant::now(),
        }
    }

    fn event(&mut self, e: &Value) {
        if self.json {
            output::line(&e.to_string());
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
            "build_reused" => format!(
                "{kind}: reused from {}",
                e["data"]["reusedFrom"].as_str().unwrap_or("?")
            ),
            _ => kind.to_owned(),
        };
        if self.bar.is_hidden() {
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!("[{secs:>6.1}s] {progress:>3}%  {detail}");
        } else {
            self.bar.set_position(progress.clamp(0, 100) as u64);
            self.bar.set_message(detail);
        }
    }

    fn log(&mut self, line: &str) {
        self.bar.suspend(|| output::line(line));
    }

    fn done(&mut self) {
        self.bar.abandon();
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The events after which a build does not change.
const FINAL: [&str; 4] = [
    "deploy_completed",
    "build_failed",
    "build_cancelled",
    "build_superseded",
];

/// Prints a build's log lines as they come until the log ends (`kiln logs --follow`).
pub(crate) async fn follow_log(client: &Client, id: &str, mut each: impl FnMut(&str)) -> anyhow::Result<()> {
    let logs = format!("{}?follow=true", path(&["v1", "builds", id, "logs"]));
    follow(client, &logs, |m| match m.event.as_str() {
        "line" => {
            each(&m.data);
            false
        }
        _ => true, // end (or error)
    })
    .await
}

/// Watches a build until it ends; prints the build; true when it deployed.
pub(crate) async fn watch(client: &Client, id: &str, logs: bool, json: bool) -> anyhow::Result<bool> {
    let screen = Arc::new(Mutex::new(Screen::new(json)));
    let log_task = logs.then(|| {
        let (client, id, screen) = (client.clone(), id.to_owned(), screen.clone());
        tokio::spawn(async move {
            follow_log(&client, &id, |line| screen.lock().expect("screen lock").log(line)).await
        })
    });
    let events_path = path(&["v1", "builds", id, "events", "stream"]);
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
    let build = client.ok("GET", &path(&["v1", "builds", id]), None).await?;
    if !ended && build["status"] != "deployed" && build["status"] != "failed" {
        anyhow::bail!("the event stream ended before the build did");
    }
    if json {
        output::line(&build.to_string());
    } else {
        output::print_build(&build);
    }
    Ok(build["status"] == "deployed")
}
