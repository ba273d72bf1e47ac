//! Server-Sent Events streams of the API (a build's events, its log), read with the
//! `eventsource-stream` parser over reqwest's byte stream (a character split across network
//! chunks comes out whole), and followed across dropped connections with `Last-Event-ID`, so
//! nothing is missed or shown twice.

use std::time::Duration;

use anyhow::Context;
use eventsource_stream::Eventsource;
use futures::StreamExt;

use crate::client::{ApiFailure, Client};

/// One message of a stream: its `event:` name, its `data:` and the id it resumes after.
pub(crate) use eventsource_stream::Event as Message;

/// Follows an SSE path to its end, reconnecting after a dropped connection from the last id
/// seen. `on` returns true when the stream is done. Gives up after `MAX_FAILURES` connection
/// failures in a row.
pub(crate) async fn follow(
    client: &Client,
    path: &str,
    mut on: impl FnMut(&Message) -> bool,
) -> anyhow::Result<()> {
    const MAX_FAILURES: u32 = 20;
    let mut last_id: Option<String> = None;
    let mut failures = 0;
    loop {
        let attempt = async {
            let res = client.stream(path, last_id.as_deref()).await?;
            let mut messages = res.bytes_stream().eventsource();
            let mut news = false;
            while let Some(message) = messages.next().await {
                let message = message.context("the stream broke")?;
                failures = 0;
                news = true;
                if !message.id.is_empty() {
                    last_id = Some(message.id.clone());
                }
                if on(&message) {
                    return Ok::<Option<bool>, anyhow::Error>(None);
                }
            }
            // The server ended it without a final message (with news: resume after the last).
            Ok(Some(news))
        };
        match attempt.await {
            Ok(None) => return Ok(()),
            Ok(Some(true)) => {}
            // Closed with nothing in it: counted like a failure, or a server that keeps
            // closing empty streams would be asked again forever.
            Ok(Some(false)) if failures < MAX_FAILURES => failures += 1,
            Ok(Some(false)) => {
                anyhow::bail!("the stream closed {MAX_FAILURES} times in a row without any event")
            }
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
        .find_map(|c| c.downcast_ref::<ApiFailure>())
        .is_some_and(|failure| !failure.is_transient())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_split_across_chunks_come_out_whole() {
        let chunks: Vec<Result<&[u8], std::io::Error>> = vec![
            Ok(b"id: 1\nevent: line\nda"),
            Ok(b"ta: hello\n\n: heartbeat\n\nid: 2\nevent: line\ndata:\n\n"),
            // A character split across two chunks.
            Ok(b"id: 3\nevent: line\ndata: caf\xc3"),
            Ok(b"\xa9\n\n"),
        ];
        let got: Vec<Message> = futures::stream::iter(chunks)
            .eventsource()
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].id.as_str(), got[0].data.as_str()), ("1", "hello"));
        assert_eq!((got[1].id.as_str(), got[1].data.as_str()), ("2", ""));
        assert_eq!((got[2].event.as_str(), got[2].data.as_str()), ("line", "café"));
    }
}
