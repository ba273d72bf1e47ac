//! Build logs for clients: the whole log, or its lines live as Server-Sent Events.
//!
//! While a build runs its lines are in a Redis stream ([`kiln_shared::redis::LiveLogs`]), numbered
//! from 1; once it has ended the whole log is in the artifact store, with the same numbering. A
//! follower replays what it missed (`Last-Event-ID` or `?after=` is a line number), streams new
//! lines as the builder sends them, and ends after the last line, whichever instance serves it.

use std::time::Duration;

use bytes::Bytes;
use kiln_shared::db::versions;
use kiln_shared::domain::VersionId;
use kiln_shared::redis::LogEntry;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::state::AppState;

/// A build's log as far as it goes now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSoFar {
    /// Lines after the one asked from, numbered.
    pub lines: Vec<(u64, String)>,
    /// Whether the log is complete (the build has ended and its log is stored).
    pub complete: bool,
}

/// The log's lines after `after`: from the store once the build has ended, else from the live
/// stream.
pub async fn so_far(state: &AppState, build: VersionId, after: u64) -> Result<LogSoFar, ApiError> {
    let version = versions::get(&state.db, build)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("build {build} not found")))?;
    if version.status.is_final() {
        if let Some(stored) = state.artifacts.get_log(build).await? {
            return Ok(LogSoFar {
                lines: numbered(&stored, after),
                complete: true,
            });
        }
    }
    let entries = state
        .live_logs
        .all(build)
        .await
        .map_err(|e| ApiError::Unavailable {
            what: "the live log",
            cause: e.into(),
        })?;
    let mut complete = version.status.is_final();
    let mut lines = Vec::new();
    for e in entries {
        match e {
            LogEntry::Line { n, text } if n > after => lines.push((n, text)),
            LogEntry::Line { .. } => {}
            LogEntry::End => complete = true,
        }
    }
    Ok(LogSoFar { lines, complete })
}

/// The stored log's lines after `after`, numbered from 1.
fn numbered(stored: &[u8], after: u64) -> Vec<(u64, String)> {
    String::from_utf8_lossy(stored)
        .lines()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.replace('\r', "")))
        .filter(|(n, _)| *n > after)
        .collect()
}

fn sse_line(n: u64, text: &str) -> Bytes {
    Bytes::from(format!("id: {n}\nevent: line\ndata: {text}\n\n"))
}

fn sse_end(last: u64) -> Bytes {
    Bytes::from(format!("event: end\ndata: {{\"lastLine\":{last}}}\n\n"))
}

/// Streams the log's lines after `after` into `out` (SSE-encoded) until its end, the client
/// going away, or an error.
pub async fn follow(
    state: AppState,
    build: VersionId,
    mut after: u64,
    heartbeat: Duration,
    out: mpsc::Sender<Bytes>,
) {
    if let Err(e) = follow_inner(&state, build, &mut after, heartbeat, &out).await {
        tracing::warn!(error = %e, build_id = %build, "cannot follow the build log");
        let _ = out
            .send(Bytes::from(
                "event: error\ndata: {\"error\":\"the log is unavailable\"}\n\n",
            ))
            .await;
    }
}

async fn follow_inner(
    state: &AppState,
    build: VersionId,
    after: &mut u64,
    heartbeat: Duration,
    out: &mpsc::Sender<Bytes>,
) -> anyhow::Result<()> {
    let mut follower = state.live_logs.follower(build, heartbeat);
    // Whether the stream may be missing: at the start, and after a read that found nothing.
    let mut check = true;
    loop {
        // No live stream: the build has not written a line yet, or it ended long enough ago
        // that only the stored log is left.
        if std::mem::take(&mut check) && !follower.exists().await? {
            let ended = versions::get(&state.db, build)
                .await?
                .is_none_or(|v| v.status.is_final());
            if ended {
                let rest = so_far(state, build, *after).await?;
                for (n, text) in &rest.lines {
                    *after = *n;
                    if out.send(sse_line(*n, text)).await.is_err() {
                        return Ok(());
                    }
                }
                let _ = out.send(sse_end(*after)).await;
                return Ok(());
            }
        }
        let entries = tokio::select! {
            entries = follower.next(*after) => entries?,
            () = out.closed() => return Ok(()),
        };
        if entries.is_empty() {
            if out.send(Bytes::from_static(b": heartbeat\n\n")).await.is_err() {
                return Ok(());
            }
            check = true;
            continue;
        }
        for e in entries {
            match e {
                LogEntry::Line { n, text } => {
                    *after = n;
                    if out.send(sse_line(n, &text)).await.is_err() {
                        return Ok(());
                    }
                }
                LogEntry::End => {
                    let _ = out.send(sse_end(*after)).await;
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_lines_are_numbered_like_live_ones() {
        let stored = b"$ pnpm install\r\nok\n\nlast\n";
        assert_eq!(
            numbered(stored, 1),
            vec![(2, "ok".to_owned()), (3, String::new()), (4, "last".to_owned())]
        );
    }
}
