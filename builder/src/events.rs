//! The daemon's build events, recorded and fanned out in the background: a build hands each
//! event over and goes on, and one task records them in order (Postgres, then Redis Pub/Sub).
//! A build's job is acknowledged only after its events are recorded ([`EventSink::flush`]).

use kiln_shared::db::{events, PgPool};
use kiln_shared::domain::{EventType, VersionId};
use kiln_shared::redis::Queue;
use tokio::sync::{mpsc, oneshot};

enum Msg {
    Event(VersionId, Option<i32>, EventType, serde_json::Value),
    Flush(oneshot::Sender<()>),
}

#[derive(Debug, Clone)]
pub struct EventSink {
    tx: Option<mpsc::UnboundedSender<Msg>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Event(b, a, k, _) => write!(f, "Event({b}, {a:?}, {k})"),
            Msg::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl EventSink {
    /// Starts the recording task; `enabled: false` drops every event (`KILN_BUILD_EVENTS=off`).
    pub fn start(db: PgPool, queue: Queue, enabled: bool) -> Self {
        if !enabled {
            return Self { tx: None };
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                match msg {
                    Msg::Event(build, attempt, kind, data) => {
                        record(&db, &queue, build, attempt, kind, &data).await
                    }
                    Msg::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Self { tx: Some(tx) }
    }

    /// Hands an event of one attempt of a build over (`None`: whichever attempt is current);
    /// never waits. It is dropped if another attempt has taken the build over by then.
    pub fn emit(&self, build: VersionId, attempt: Option<i32>, kind: EventType, data: serde_json::Value) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Event(build, attempt, kind, data));
        }
    }

    /// Waits until every event handed over so far is recorded.
    pub async fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (done, wait) = oneshot::channel();
            if tx.send(Msg::Flush(done)).is_ok() {
                let _ = wait.await;
            }
        }
    }
}

/// Records a build event and fans it out. An event that cannot be recorded is logged, never
/// fatal: the build's outcome is recorded in its row either way.
async fn record(
    db: &PgPool,
    queue: &Queue,
    build: VersionId,
    attempt: Option<i32>,
    kind: EventType,
    data: &serde_json::Value,
) {
    match events::record_for(db, build, attempt, kind, data).await {
        Ok(Some(event)) => {
            if let Err(e) = queue.publish_event(&event).await {
                tracing::warn!(error = %e, build_id = %build, event = %kind, "cannot publish a build event (clients polling Postgres still see it)");
            }
        }
        Ok(None) => {
            tracing::info!(build_id = %build, event = %kind, "build event dropped: no such build, or another attempt owns it")
        }
        Err(e) => tracing::warn!(error = %e, build_id = %build, event = %kind, "cannot record a build event"),
    }
}
