//! A build's log: stdout and stderr of every step, capped. When the cap is hit, the log says so
//! and later lines are dropped; the last lines are kept apart for the error message.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

const TAIL_LINES: usize = 40;
const TAIL_LINE_BYTES: usize = 300;

#[derive(Debug)]
struct Inner {
    text: Vec<u8>,
    cap: usize,
    truncated: bool,
    tail: VecDeque<String>,
}

/// Shared by the readers of a step's stdout and stderr.
#[derive(Debug, Clone)]
pub struct BuildLog {
    inner: Arc<Mutex<Inner>>,
}

impl BuildLog {
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                text: Vec::new(),
                cap,
                truncated: false,
                tail: VecDeque::with_capacity(TAIL_LINES),
            })),
        }
    }

    pub fn line(&self, line: &str) {
        let mut inner = self.inner.lock().expect("log lock poisoned");
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
                "[kiln] log truncated: it passed the cap of {} KB\n",
                inner.cap / 1024
            );
            inner.text.extend_from_slice(note.as_bytes());
            return;
        }
        inner.text.extend_from_slice(line.as_bytes());
        inner.text.push(b'\n');
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
        assert!(text.ends_with("[kiln] log truncated: it passed the cap of 2 KB\n"));
        assert_eq!(log.tail(2), "line 498\nline 499");
    }
}
