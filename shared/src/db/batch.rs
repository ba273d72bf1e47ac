//! Group commit: many callers' small statements run as one.
//!
//! Admission asks Postgres two small things per request (the project's base version, then the
//! new row). Under load most of Postgres' time goes to the statements themselves (a round trip,
//! a backend wake-up, a commit each), not to the rows. A [`Batcher`] queues the callers' inputs
//! and runs whatever has gathered as one statement over arrays (`unnest`), with at most
//! `parallel` statements in flight. An idle farm pays nothing: a lone request forms a batch of
//! one at once; batches only grow while earlier ones are running.
//!
//! A batch that fails is run again one input at a time, so one bad input (a row that breaks a
//! constraint) fails only its own caller, with its own error. A batch that fails because
//! Postgres is unreachable fails all its callers at once, and so does every batch for the next
//! [`UNREACHABLE_FOR`] without trying: while Postgres is down, callers get their error (a 503)
//! after one connection timeout at most, instead of waiting one timeout per input and per
//! batch ahead of them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::DbError;

type Reply<Out> = oneshot::Sender<Result<Out, DbError>>;

/// Runs one statement for a whole batch; returns one output per input, in order.
pub trait BatchFn<In, Out>: Send + Sync + 'static {
    fn run(&self, inputs: Vec<In>) -> impl Future<Output = Result<Vec<Out>, DbError>> + Send;
}

impl<In, Out, F, Fut> BatchFn<In, Out> for F
where
    F: Fn(Vec<In>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<Out>, DbError>> + Send,
{
    fn run(&self, inputs: Vec<In>) -> impl Future<Output = Result<Vec<Out>, DbError>> + Send {
        self(inputs)
    }
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// After a batch found Postgres unreachable, batches fail at once for this long.
pub const UNREACHABLE_FOR: Duration = Duration::from_secs(1);

/// When a batch last found Postgres unreachable, and why.
type Down = Arc<Mutex<Option<(Instant, String)>>>;

/// A queue of inputs in front of a batched statement. Cheap to clone. The task behind it starts
/// with the first call, on that caller's runtime, and ends when the last clone is dropped.
pub struct Batcher<In, Out> {
    tx: mpsc::Sender<(In, Reply<Out>)>,
    task: Arc<Mutex<Option<Task>>>,
    started: Arc<AtomicBool>,
}

impl<In, Out> std::fmt::Debug for Batcher<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("started", &self.started.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<In, Out> Clone for Batcher<In, Out> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            task: self.task.clone(),
            started: self.started.clone(),
        }
    }
}

impl<In, Out> Batcher<In, Out>
where
    In: Clone + Send + 'static,
    Out: Send + 'static,
{
    /// A batcher of at most `max_batch` inputs per statement and `parallel` statements at once.
    pub fn new(name: &'static str, max_batch: usize, parallel: usize, f: impl BatchFn<In, Out>) -> Self {
        assert!(max_batch > 0 && parallel > 0);
        let (tx, mut rx) = mpsc::channel::<(In, Reply<Out>)>(max_batch * parallel * 4);
        let f = Arc::new(f);
        let slots = Arc::new(Semaphore::new(parallel));
        let down: Down = Arc::default();
        let task = async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = Vec::with_capacity(max_batch);
                if rx.recv_many(&mut batch, max_batch).await == 0 {
                    return; // every sender is gone
                }
                tracing::trace!(batcher = name, size = batch.len(), "running a batch");
                let f = f.clone();
                let down = down.clone();
                tokio::spawn(async move {
                    run_batch(&*f, batch, &down).await;
                    drop(slot);
                });
            }
        };
        Self {
            tx,
            task: Arc::new(Mutex::new(Some(Box::pin(task)))),
            started: Arc::default(),
        }
    }

    /// Queues `input` and waits for its output.
    pub async fn call(&self, input: In) -> Result<Out, DbError> {
        if !self.started.load(Ordering::Acquire) {
            if let Some(task) = self.task.lock().expect("batcher lock poisoned").take() {
                tokio::spawn(task);
            }
            self.started.store(true, Ordering::Release);
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((input, reply))
            .await
            .map_err(|_| DbError::Sqlx(sqlx::Error::PoolClosed))?;
        answer.await.map_err(|_| DbError::Sqlx(sqlx::Error::PoolClosed))?
    }
}

async fn run_batch<In: Clone, Out>(f: &impl BatchFn<In, Out>, batch: Vec<(In, Reply<Out>)>, down: &Down) {
    let (inputs, replies): (Vec<In>, Vec<Reply<Out>>) = batch.into_iter().unzip();
    let n = inputs.len();
    let recently_down = down
        .lock()
        .expect("batcher lock poisoned")
        .as_ref()
        .filter(|(at, _)| at.elapsed() < UNREACHABLE_FOR)
        .map(|(_, why)| why.clone());
    if let Some(why) = recently_down {
        for reply in replies {
            let _ = reply.send(Err(DbError::Unreachable(why.clone())));
        }
        return;
    }
    match f.run(inputs.clone()).await {
        Ok(outputs) if outputs.len() == n => {
            for (reply, out) in replies.into_iter().zip(outputs) {
                let _ = reply.send(Ok(out));
            }
        }
        Ok(outputs) => {
            let reason = format!("a batch of {n} returned {} results", outputs.len());
            for reply in replies {
                let _ = reply.send(Err(DbError::Corrupt {
                    id: "batch".into(),
                    reason: reason.clone(),
                }));
            }
        }
        Err(e) if e.is_unavailable() => {
            tracing::warn!(error = %e, size = n, "postgres is unreachable: the batch fails");
            let why = e.to_string();
            *down.lock().expect("batcher lock poisoned") = Some((Instant::now(), why.clone()));
            let mut replies = replies.into_iter();
            if let Some(first) = replies.next() {
                let _ = first.send(Err(e));
            }
            for reply in replies {
                let _ = reply.send(Err(DbError::Unreachable(why.clone())));
            }
        }
        Err(e) if n == 1 => {
            let _ = replies.into_iter().next().expect("one reply").send(Err(e));
        }
        Err(e) => {
            tracing::debug!(error = %e, size = n, "a batch failed; running its inputs one by one");
            for (input, reply) in inputs.into_iter().zip(replies) {
                let one = f.run(vec![input]).await.and_then(|mut v| {
                    v.pop().ok_or_else(|| DbError::Corrupt {
                        id: "batch".into(),
                        reason: "a batch of 1 returned nothing".into(),
                    })
                });
                let _ = reply.send(one);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test]
    async fn an_unreachable_postgres_fails_the_whole_batch_once_and_the_next_ones_at_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let batcher = Batcher::new("test", 8, 1, move |inputs: Vec<u32>| {
            let calls = counted.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                // What a refused connection looks like, after the pool's wait.
                tokio::time::sleep(Duration::from_millis(50)).await;
                let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
                Err::<Vec<u32>, _>(DbError::Sqlx(sqlx::Error::Io(refused))).map(|_| inputs)
            }
        });
        let started = Instant::now();
        let results = futures::future::join_all((0..5).map(|i| batcher.call(i))).await;
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().is_err_and(DbError::is_unavailable)),
            "{results:?}"
        );
        // One try for the first batch; the batch that gathered behind it failed without one.
        assert!(
            calls.load(Ordering::SeqCst) <= 2,
            "{} tries",
            calls.load(Ordering::SeqCst)
        );
        let again = batcher.call(9).await;
        assert!(matches!(again, Err(DbError::Unreachable(_))), "{again:?}");
        assert!(calls.load(Ordering::SeqCst) <= 2);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );

        // Once the window has passed, batches try again.
        tokio::time::sleep(UNREACHABLE_FOR).await;
        let before = calls.load(Ordering::SeqCst);
        assert!(batcher.call(10).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), before + 1);
    }
}
