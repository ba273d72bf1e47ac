//! Live build events for SSE clients.
//!
//! Postgres holds every event (`build_events`); Redis Pub/Sub carries each one, as it is
//! recorded, to every API instance. Each instance keeps one `PSUBSCRIBE <prefix>:events:*`
//! connection ([`EventHub`]) and hands events to the streams of the builds they belong to. A
//! stream never trusts Pub/Sub alone: it replays from Postgres, takes live events only when
//! they are the next id, and reads Postgres again on any gap and at every heartbeat, so a lost
//! message (a Redis blip, a slow stream) delays an event by one heartbeat at most and never
//! loses, repeats or reorders one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use kiln_shared::backoff::Backoff;
use kiln_shared::db::events::{self, BuildEvent};
use kiln_shared::db::PgPool;
use kiln_shared::domain::VersionId;
use kiln_shared::redis::{Keys, Redis};
use tokio::sync::mpsc;

/// Events a stream may fall behind by before it is cut off from live delivery (it then catches
/// up from Postgres).
const STREAM_BUFFER: usize = 256;
/// Events read from Postgres per query while replaying.
const REPLAY_PAGE: i64 = 500;

type Subscribers = HashMap<VersionId, Vec<(u64, mpsc::Sender<BuildEvent>)>>;

/// One process's Pub/Sub subscription, shared by all its SSE streams.
#[derive(Debug, Clone, Default)]
pub struct EventHub {
    subscribers: Arc<Mutex<Subscribers>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

/// A stream's registration; dropping it unregisters.
pub struct Subscription {
    hub: EventHub,
    build: VersionId,
    token: u64,
    pub events: mpsc::Receiver<BuildEvent>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subs = self.hub.subscribers.lock().expect("hub lock poisoned");
        if let Some(list) = subs.get_mut(&self.build) {
            list.retain(|(t, _)| *t != self.token);
            if list.is_empty() {
                subs.remove(&self.build);
            }
        }
    }
}

impl EventHub {
    /// Starts the subscriber task on the current runtime. It reconnects by itself.
    pub fn start(redis: Redis, keys: Keys) -> Self {
        let hub = EventHub::default();
        let this = hub.clone();
        tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
            loop {
                match this.listen(&redis, &keys).await {
                    Ok(()) => {
                        // It was subscribed, so Redis answered: start over from the shortest delay.
                        backoff.reset();
                        tracing::warn!("the events subscription ended; resubscribing")
                    }
                    Err(e) => tracing::warn!(error = %e, "the events subscription failed; resubscribing"),
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        });
        hub
    }

    async fn listen(&self, redis: &Redis, keys: &Keys) -> Result<(), kiln_shared::redis::RedisError> {
        let mut pubsub = redis.pubsub().await?;
        pubsub.psubscribe(keys.events_pattern()).await?;
        tracing::debug!("subscribed to build events");
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let Ok(payload) = msg.get_payload::<String>() else {
                continue;
            };
            match serde_json::from_str::<BuildEvent>(&payload) {
                Ok(event) => self.deliver(event),
                Err(e) => tracing::warn!(error = %e, "a malformed build event on Pub/Sub"),
            }
        }
        Ok(())
    }

    fn deliver(&self, event: BuildEvent) {
        let mut subs = self.subscribers.lock().expect("hub lock poisoned");
        if let Some(list) = subs.get_mut(&event.build_id) {
            // A stream that cannot keep up is dropped from live delivery; it notices the closed
            // channel and catches up from Postgres.
            list.retain(|(_, tx)| tx.try_send(event.clone()).is_ok());
        }
    }

    pub fn subscribe(&self, build: VersionId) -> Subscription {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let token = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.subscribers
            .lock()
            .expect("hub lock poisoned")
            .entry(build)
            .or_default()
            .push((token, tx));
        Subscription {
            hub: self.clone(),
            build,
            token,
            events: rx,
        }
    }
}

/// One SSE message.
pub fn sse_event(e: &BuildEvent) -> Bytes {
    let data = serde_json::to_string(e).expect("an event always serialises");
    Bytes::from(format!("id: {}\nevent: {}\ndata: {data}\n\n", e.id, e.kind))
}

/// What a stream does between events.
#[derive(Debug, Clone, Copy)]
pub struct StreamTiming {
    /// A comment line this often, so proxies keep the connection open; also when Postgres is
    /// read again in case a live message was lost.
    pub heartbeat: Duration,
}

/// Streams a build's events after `after` into `out` (SSE-encoded), until the final event, the
/// client going away, or an error. Returns when done.
pub async fn stream(
    db: PgPool,
    hub: EventHub,
    build: VersionId,
    mut after: i32,
    timing: StreamTiming,
    out: mpsc::Sender<Bytes>,
) {
    // Subscribe before replaying, so nothing recorded in between is missed.
    let mut live = Some(hub.subscribe(build));
    let mut heartbeat = tokio::time::interval(timing.heartbeat);
    heartbeat.tick().await;
    loop {
        // Catch up from Postgres.
        match catch_up(&db, build, &mut after, &out).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::Done) => return,
            Err(e) => {
                tracing::warn!(error = %e, build_id = %build, "cannot read build events");
                let _ = out
                    .send(Bytes::from(
                        "event: error\ndata: {\"error\":\"events are unavailable\"}\n\n",
                    ))
                    .await;
                return;
            }
        }
        // Then live, until a gap, a lost subscription or a heartbeat sends us back to Postgres.
        loop {
            let next = async {
                match live.as_mut() {
                    Some(sub) => sub.events.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = next => match event {
                    Some(e) if e.id <= after => continue,
                    Some(e) if e.id == after + 1 => {
                        after = e.id;
                        let last = e.kind.is_final();
                        if out.send(sse_event(&e)).await.is_err() || last {
                            return;
                        }
                    }
                    Some(_) => break, // a gap: read it from Postgres
                    None => {
                        // Cut off (too slow): subscribe again and catch up.
                        live = Some(hub.subscribe(build));
                        break;
                    }
                },
                _ = heartbeat.tick() => {
                    if out.send(Bytes::from_static(b": heartbeat\n\n")).await.is_err() {
                        return;
                    }
                    break;
                }
                () = out.closed() => return,
            }
        }
    }
}

enum Flow {
    Continue,
    Done,
}

async fn catch_up(
    db: &PgPool,
    build: VersionId,
    after: &mut i32,
    out: &mpsc::Sender<Bytes>,
) -> Result<Flow, kiln_shared::db::DbError> {
    loop {
        let page = events::after(db, build, *after, REPLAY_PAGE).await?;
        for e in &page {
            *after = e.id;
            if out.send(sse_event(e)).await.is_err() || e.kind.is_final() {
                return Ok(Flow::Done);
            }
        }
        if (page.len() as i64) < REPLAY_PAGE {
            break;
        }
    }
    // A build recorded before events existed has none and ends here; any other build ends with
    // its final event.
    Ok(match events::last_id(db, build).await? {
        None | Some(0) => Flow::Done,
        Some(_) => Flow::Continue,
    })
}
