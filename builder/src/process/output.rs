//! A command's output: its lines into the build log, each kept to a bound however the command
//! prints, or its stdout collected up to a cap.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::log::BuildLog;

/// The longest line of a command's output that is kept whole. A longer line is cut: its
/// first `MAX_LINE_BYTES` are logged followed by [`line_cut_marker`], and the rest of it (up to
/// its newline) is discarded but counted as printed, so a command printing without newlines
/// holds no more than this (and [`PIPE_CHUNK`]) of the daemon's memory per pipe, and is still
/// stopped by the log limit.
const MAX_LINE_BYTES: usize = 16 * 1024;
/// How much of a pipe is read at a time.
const PIPE_CHUNK: usize = 64 * 1024;

/// Ends the kept start of a line cut at [`MAX_LINE_BYTES`].
fn line_cut_marker() -> String {
    format!(" [kiln: line cut at {} KB]", MAX_LINE_BYTES / 1024)
}

/// A pipe's lines into `log` (UTF-8 or not, `\r\n` or `\n`), each kept to at most
/// [`MAX_LINE_BYTES`]: the memory used is bounded whatever the command prints.
pub(super) async fn pipe_lines(mut pipe: impl AsyncRead + Unpin, log: BuildLog) {
    let mut chunk = vec![0u8; PIPE_CHUNK];
    let mut line: Vec<u8> = Vec::with_capacity(MAX_LINE_BYTES);
    // The line being read was cut: the rest of it, up to its newline, is discarded.
    let mut cutting = false;
    loop {
        let n = match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            let (part, ended) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let part = &rest[..i];
                    rest = &rest[i + 1..];
                    (part, true)
                }
                None => (std::mem::take(&mut rest), false),
            };
            let newline = u64::from(ended);
            if cutting {
                log.discarded(part.len() as u64 + newline);
                cutting = !ended;
                continue;
            }
            let room = MAX_LINE_BYTES - line.len();
            if part.len() <= room {
                line.extend_from_slice(part);
                if ended {
                    log_line(&log, &line);
                    line.clear();
                }
                continue;
            }
            line.extend_from_slice(&part[..room]);
            let kept = without_split_char(&line);
            let dropped = (line.len() - kept.len() + part.len() - room) as u64;
            log.cut_line(&String::from_utf8_lossy(kept), &line_cut_marker());
            log.discarded(dropped + newline);
            line.clear();
            cutting = !ended;
        }
    }
    if !line.is_empty() {
        log_line(&log, &line);
    }
}

/// One whole line read from a pipe (without its `\n`) into `log`.
fn log_line(log: &BuildLog, line: &[u8]) {
    let line = String::from_utf8_lossy(line);
    log.line(line.trim_end_matches(['\n', '\r']));
}

/// `bytes` without the last character when the end of `bytes` cut it in two.
fn without_split_char(bytes: &[u8]) -> &[u8] {
    let from = bytes.len().saturating_sub(3);
    match (from..bytes.len()).rev().find(|&i| bytes[i] & 0xC0 != 0x80) {
        Some(start) => {
            let width = match bytes[start] {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            if start + width > bytes.len() {
                &bytes[..start]
            } else {
                bytes
            }
        }
        None => bytes,
    }
}

/// Reads a pipe to its end, keeping at most `cap + 1` bytes (one more than allowed, so the
/// caller can tell the cap was passed) and draining the rest so the writer never blocks.
pub(super) async fn collect_capped(mut pipe: impl AsyncRead + Unpin, cap: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = (cap + 1).saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
    buf
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sandbox::watch::{Breach, Watch};

    /// `input` through [`pipe_lines`] by a pipe, written `write` bytes at a time.
    async fn piped(input: Vec<u8>, write: usize, log: &BuildLog) {
        use tokio::io::AsyncWriteExt;
        let (mut tx, rx) = tokio::io::duplex(PIPE_CHUNK);
        let writer = tokio::spawn(async move {
            for part in input.chunks(write) {
                tx.write_all(part).await.unwrap();
            }
        });
        pipe_lines(rx, log.clone()).await;
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn a_line_without_end_is_cut_at_the_bound_and_the_rest_counted_but_not_kept() {
        const FLOOD: usize = 50 * 1024 * 1024;
        let mut input = b"before\r\n".to_vec();
        input.resize(input.len() + FLOOD, b'x');
        input.extend_from_slice(b"\nafter 1\nafter 2\r\n");
        input.extend_from_slice(&vec![b'y'; MAX_LINE_BYTES]);
        input.extend_from_slice("\n\u{e9}t\u{e9} ".as_bytes());
        input.extend_from_slice(b"\xff\nlast, no newline");
        let log = BuildLog::new(1 << 20);
        // Written in pieces that straddle the reads' ends.
        piped(input.clone(), 7919, &log).await;

        let text = String::from_utf8(log.bytes()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let marker = line_cut_marker();
        assert_eq!(marker, " [kiln: line cut at 16 KB]");
        assert_eq!(
            lines.len(),
            7,
            "{:?}",
            lines.iter().map(|l| l.len()).collect::<Vec<_>>()
        );
        assert_eq!(lines[0], "before");
        assert_eq!(lines[1], format!("{}{marker}", "x".repeat(MAX_LINE_BYTES)));
        assert_eq!(lines[2..4], ["after 1", "after 2"]);
        assert_eq!(
            lines[4],
            "y".repeat(MAX_LINE_BYTES),
            "a line of the bound exactly is whole"
        );
        assert_eq!(lines[5], "\u{e9}t\u{e9} \u{fffd}");
        assert_eq!(lines[6], "last, no newline");
        assert_eq!(log.last_line(), 7);
        // What was kept is bounded, whatever came in.
        let longest = text.lines().map(str::len).max().unwrap();
        assert_eq!(longest, MAX_LINE_BYTES + marker.len());
        assert!(text.len() < 3 * MAX_LINE_BYTES, "{}", text.len());
        // Every byte printed is counted (the marker and a dropped `\r` or two aside).
        let printed = log.printed();
        let input_len = input.len() as u64;
        assert!(
            (input_len..input_len + marker.len() as u64 + 8).contains(&printed),
            "{printed} of {input_len}"
        );
    }

    #[tokio::test]
    async fn a_cut_line_keeps_no_half_character_nor_half_secret() {
        let mut input = vec![b'a'; MAX_LINE_BYTES - 1];
        input.extend_from_slice("\u{e9}and more\n".as_bytes());
        input.extend_from_slice(&vec![b'b'; MAX_LINE_BYTES - 4]);
        input.extend_from_slice(b"hunter2-secret, and more\nnext\n");
        let log = BuildLog::with(
            1 << 20,
            crate::log::Redactor::new(["hunter2-secret".to_owned()]),
            None,
        );
        piped(input, PIPE_CHUNK, &log).await;
        let text = String::from_utf8(log.bytes()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let marker = line_cut_marker();
        assert_eq!(lines[0], format!("{}{marker}", "a".repeat(MAX_LINE_BYTES - 1)));
        assert_eq!(
            lines[1],
            format!("{}[redacted]{marker}", "b".repeat(MAX_LINE_BYTES - 4))
        );
        assert_eq!(lines[2], "next");
        assert!(!text.contains("hunt"), "no part of the secret is kept");
    }

    #[tokio::test]
    async fn a_flood_without_newline_passes_the_log_limit() {
        use crate::sandbox::watch::LOG_KILL_FACTOR;
        let dir = tempfile::tempdir().unwrap();
        let vars = [
            (
                "KILN_DATABASE_URL",
                "postgres://unused@127.0.0.1:1/unused".to_owned(),
            ),
            ("KILN_ARTIFACTS", format!("file://{}", dir.path().display())),
        ];
        let settings =
            kiln_shared::config::Settings::from_vars(vars.into_iter().map(|(k, v)| (k.to_owned(), v)))
                .unwrap();
        let cap: u64 = 64 * 1024;
        let log = BuildLog::new(cap as usize);
        let watch = Watch {
            limits: &settings.sandbox,
            cgroup: None,
            root_pid: None,
            workspace: dir.path(),
            log: &log,
            max_log_bytes: cap,
            owner: None,
        };
        piped(vec![b'x'; 2 * (LOG_KILL_FACTOR * cap) as usize], 65_536, &log).await;
        assert!(log.printed() > LOG_KILL_FACTOR * cap, "{}", log.printed());
        assert_eq!(log.last_line(), 1, "one line kept, cut");
        let breach = tokio::time::timeout(Duration::from_secs(5), watch.first_breach())
            .await
            .expect("the log limit is seen");
        assert_eq!(
            breach,
            Breach::Log {
                kb: 64,
                factor: LOG_KILL_FACTOR
            }
        );
        assert_eq!(
            breach.to_string(),
            "log limit 64 KB exceeded: the build printed more than 16 times that"
        );
    }
}
