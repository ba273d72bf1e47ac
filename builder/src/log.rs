//! A build's log: stdout and stderr of every step, capped. When the cap is hit, the log says so
//! and later lines are dropped; the last lines are kept apart for the error message.
//!
//! Every kept line gets its number (from 1) and goes, as it is written, to the live stream
//! ([`LogShipper`]); the stored log holds the same lines, so line `n` is the same in both.
//! Known secret values are replaced by `[redacted]` before a line is kept anywhere.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_shared::domain::VersionId;
use kiln_shared::redis::LiveLogs;
use tokio::sync::mpsc;

pub use crate::redact::Redactor;

const TAIL_LINES: usize = 40;
const TAIL_LINE_BYTES: usize = 300;

#[derive(Debug)]
struct Inner {
    text: Vec<u8>,
    cap: usize,
    truncated: bool,
    /// Bytes the build printed, kept or not.
    printed: u64,
    /// The number of the last kept line.
    lines: u64,
    tail: VecDeque<String>,
    /// Lines pushed, kept or not (the tail's lines are the last of these).
    pushed: u64,
    live: Option<mpsc::UnboundedSender<(u64, String)>>,
}

/// Where the log stood when a step began, to read what the step printed ([`BuildLog::since`]).
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    text: usize,
    pushed: u64,
}

impl Inner {
    fn keep(&mut self, line: &str) {
        self.lines += 1;
        self.text.extend_from_slice(line.as_bytes());
        self.text.push(b'\n');
        if let Some(live) = &self.live {
            // The shipper is gone only when the build is over.
            let _ = live.send((self.lines, line.to_owned()));
        }
    }
}

/// Shared by the readers of a step's stdout and stderr.
#[derive(Debug, Clone)]
pub struct BuildLog {
    inner: Arc<Mutex<Inner>>,
    redactor: Arc<std::sync::RwLock<Arc<Redactor>>>,
}

impl BuildLog {
    #[cfg(test)]
    pub fn new(cap: usize) -> Self {
        Self::with(cap, Redactor::default(), None)
    }

    /// A log that redacts and sends each kept line to `live`.
    pub fn with(cap: usize, redactor: Redactor, live: Option<mpsc::UnboundedSender<(u64, String)>>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                text: Vec::new(),
                cap,
                truncated: false,
                printed: 0,
                lines: 0,
                tail: VecDeque::with_capacity(TAIL_LINES),
                pushed: 0,
                live,
            })),
            redactor: Arc::new(std::sync::RwLock::new(Arc::new(redactor))),
        }
    }

    pub fn line(&self, line: &str) {
        let redactor = self.redactor();
        self.push(redactor.apply(line));
    }

    fn redactor(&self) -> Arc<Redactor> {
        self.redactor.read().expect("redactor lock poisoned").clone()
    }

    /// From now on, also redacts a project's secret values (and their encoded forms).
    pub fn redact_project_secrets(&self, values: Vec<String>) {
        let mut slot = self.redactor.write().expect("redactor lock poisoned");
        let extended = slot.with_project(values);
        *slot = Arc::new(extended);
    }

    /// `text` as the log would keep it (for messages built outside the log).
    pub fn redact<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        let redactor = self.redactor();
        match text.lines().any(|l| redactor.apply(l) != l) {
            false => std::borrow::Cow::Borrowed(text),
            true => std::borrow::Cow::Owned(
                text.lines()
                    .map(|l| redactor.apply(l).into_owned())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        }
    }

    /// The start of a line cut short (the caller discards the rest, see
    /// [`BuildLog::discarded`]), kept followed by `marker`.
    pub fn cut_line(&self, start: &str, marker: &str) {
        let mut line = self.redactor().apply_cut(start).into_owned();
        line.push_str(marker);
        self.push(std::borrow::Cow::Owned(line));
    }

    /// Bytes the build printed that are not kept anywhere (the rest of a line cut short):
    /// counted as printed, so the log limit sees them.
    pub fn discarded(&self, bytes: u64) {
        self.inner.lock().expect("log lock poisoned").printed += bytes;
    }

    fn push(&self, line: std::borrow::Cow<'_, str>) {
        // A carriage return would end the line early in a follower's SSE stream.
        let line = if line.contains('\r') {
            std::borrow::Cow::Owned(line.replace('\r', ""))
        } else {
            line
        };
        let mut inner = self.inner.lock().expect("log lock poisoned");
        inner.printed += line.len() as u64 + 1;
        inner.pushed += 1;
        if inner.tail.len() == TAIL_LINES {
            inner.tail.pop_front();
        }
        let mut shown: String = line.chars().take(TAIL_LINE_BYTES).collect();
        if shown.len() < line.len() {
            shown.push('…');
        }
        inner.tail.push_back(shown);
        if inner.truncated {
            return;
        }
        if inner.text.len() + line.len() + 1 > inner.cap {
            inner.truncated = true;
            let note = format!(
                "[kiln] log truncated: it passed the cap of {} KB (KILN_MAX_LOG_KB)",
                inner.cap / 1024
            );
            inner.keep(&note);
            return;
        }
        inner.keep(&line);
    }

    /// Starts from the lines an earlier attempt of the build already streamed (numbered from
    /// 1, in order), so this attempt's lines follow them: line `n` stays the same line for a
    /// follower and in the stored log. They are not sent to the live stream again.
    pub fn resume(&self, earlier: impl IntoIterator<Item = (u64, String)>) {
        let mut inner = self.inner.lock().expect("log lock poisoned");
        for (n, text) in earlier {
            if n != inner.lines + 1 {
                break; // a gap (the stream lost lines): keep what is contiguous
            }
            if inner.text.len() + text.len() + 1 > inner.cap {
                inner.truncated = true;
            }
            inner.lines = n;
            inner.text.extend_from_slice(text.as_bytes());
            inner.text.push(b'\n');
        }
    }

    /// A line of Kiln's saying why a step ended: kept even past the cap (there are at most a
    /// few; the build's own output never goes through here).
    pub fn verdict(&self, line: &str) {
        let mut inner = self.inner.lock().expect("log lock poisoned");
        inner.pushed += 1;
        if inner.tail.len() == TAIL_LINES {
            inner.tail.pop_front();
        }
        inner.tail.push_back(line.to_owned());
        inner.keep(line);
    }

    /// Where the log stands now.
    pub fn mark(&self) -> Mark {
        let inner = self.inner.lock().expect("log lock poisoned");
        Mark {
            text: inner.text.len(),
            pushed: inner.pushed,
        }
    }

    /// What was printed since `mark`: the lines kept since then, and, when the cap cut the log
    /// meanwhile, the last lines printed after the cut (as many as the tail holds).
    pub fn since(&self, mark: Mark) -> String {
        let inner = self.inner.lock().expect("log lock poisoned");
        let kept = inner.text.get(mark.text..).unwrap_or_default();
        let mut out = String::from_utf8_lossy(kept).into_owned();
        if inner.truncated {
            let after = (inner.pushed - mark.pushed) as usize;
            let kept_lines = out.lines().count();
            let unkept = after.saturating_sub(kept_lines).min(inner.tail.len());
            for line in inner.tail.iter().skip(inner.tail.len() - unkept) {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Bytes printed so far, kept or not.
    pub fn printed(&self) -> u64 {
        self.inner.lock().expect("log lock poisoned").printed
    }

    /// The number of the last kept line.
    pub fn last_line(&self) -> u64 {
        self.inner.lock().expect("log lock poisoned").lines
    }

    /// Stops sending lines to the live stream (the build is over).
    pub fn close_live(&self) {
        self.inner.lock().expect("log lock poisoned").live = None;
    }

    /// The last lines, for an error message.
    pub fn tail(&self, lines: usize) -> String {
        let inner = self.inner.lock().expect("log lock poisoned");
        let skip = inner.tail.len().saturating_sub(lines);
        inner
            .tail
            .iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.inner.lock().expect("log lock poisoned").text.clone()
    }
}

/// How long lines wait to be sent together, at most.
const SHIP_EVERY: Duration = Duration::from_millis(50);
const SHIP_BATCH: usize = 500;

/// Sends a build's log lines to its live stream in batches, in the background; a Redis error
/// loses live lines (followers then see them in the stored log), never the build.
pub struct LogShipper {
    task: tokio::task::JoinHandle<()>,
}

impl LogShipper {
    pub fn start(live: LiveLogs, build: VersionId) -> (Self, mpsc::UnboundedSender<(u64, String)>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<(u64, String)>();
        let task = tokio::spawn(async move {
            let mut batch = Vec::new();
            while let Some(first) = rx.recv().await {
                batch.push(first);
                let deadline = tokio::time::Instant::now() + SHIP_EVERY;
                while batch.len() < SHIP_BATCH {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(line)) => batch.push(line),
                        Ok(None) | Err(_) => break,
                    }
                }
                if let Err(e) = live.append(build, &batch).await {
                    tracing::warn!(error = %e, lines = batch.len(), "cannot stream log lines");
                }
                batch.clear();
            }
        });
        (Self { task }, tx)
    }

    /// Waits until every line sent so far is in Redis (the log's sender must be closed).
    pub async fn flush(self) {
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_is_stated_and_tail_survives_it() {
        let log = BuildLog::new(2048);
        for i in 0..500 {
            log.line(&format!("line {i}"));
        }
        let text = String::from_utf8(log.bytes()).unwrap();
        assert!(text.len() <= 2048 + 100);
        assert!(text.ends_with("[kiln] log truncated: it passed the cap of 2 KB (KILN_MAX_LOG_KB)\n"));
        assert_eq!(log.tail(2), "line 498\nline 499");
        assert_eq!(log.last_line() as usize, text.lines().count());
    }

    #[test]
    fn since_a_mark_is_what_the_step_printed_also_past_the_cap() {
        let log = BuildLog::new(2048);
        log.line("install: 120 packages");
        let mark = log.mark();
        log.line("src/App.tsx(3,7): error TS2322");
        log.verdict("[kiln] done");
        assert_eq!(log.since(mark), "src/App.tsx(3,7): error TS2322\n[kiln] done\n");
        // Past the cap, the step's last lines still come back.
        let mark = log.mark();
        for i in 0..500 {
            log.line(&format!("line {i}"));
        }
        let since = log.since(mark);
        assert!(since.ends_with("line 498\nline 499\n"), "{since}");
        assert!(!since.contains("TS2322"), "{since}");
    }

    #[test]
    fn a_resumed_log_numbers_on_from_the_earlier_attempt() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let log = BuildLog::with(4096, Redactor::default(), Some(tx));
        log.resume([(1, "a".to_owned()), (2, "b".to_owned()), (4, "gap".to_owned())]);
        log.line("c");
        assert_eq!(String::from_utf8(log.bytes()).unwrap(), "a\nb\nc\n");
        assert_eq!(rx.try_recv().unwrap(), (3, "c".to_owned()));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_cut_line_is_kept_short_and_what_was_dropped_counts_as_printed() {
        let log = BuildLog::with(1024, Redactor::new(["hunter2-secret".to_owned()]), None);
        log.cut_line("aaa hunter2-secret bbb hunter", " [cut]");
        log.discarded(10 * 1024 * 1024);
        log.line("after");
        assert_eq!(
            String::from_utf8(log.bytes()).unwrap(),
            "aaa [redacted] bbb [redacted] [cut]\nafter\n"
        );
        assert!(log.printed() > 10 * 1024 * 1024, "{}", log.printed());
        assert!(log.printed() < 10 * 1024 * 1024 + 100, "{}", log.printed());
        // An end that is no secret's beginning is kept as it is.
        assert_eq!(
            Redactor::new(["hunter2-secret".to_owned()]).apply_cut("hunted"),
            "hunted"
        );
    }

    #[test]
    fn secrets_are_redacted_everywhere() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let log = BuildLog::with(
            4096,
            Redactor::new(["hunter2-secret".to_owned(), "short".to_owned()]),
            Some(tx),
        );
        log.line("token=hunter2-secret and short\r");
        let text = String::from_utf8(log.bytes()).unwrap();
        assert_eq!(text, "token=[redacted] and short\n");
        assert_eq!(log.tail(1), "token=[redacted] and short");
        assert_eq!(
            rx.try_recv().unwrap(),
            (1, "token=[redacted] and short".to_owned())
        );
    }
}
