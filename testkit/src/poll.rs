//! Looking again until something holds: each look either has what the caller waits for or
//! says what it saw instead; after the limit, the last thing seen is the error, for the caller's
//! message ("build X never deployed: {view}").

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// What one look found.
#[derive(Debug)]
pub enum Look<T, S> {
    /// What the caller waits for.
    Ready(T),
    /// Not yet: what was seen instead.
    Seen(S),
}

/// The limit passed; the last look saw `last`.
#[derive(Debug)]
pub struct TimedOut<S> {
    pub last: S,
    pub limit: Duration,
}

/// Looks (`look()`), then sleeps `every`, until a look is [`Look::Ready`]; a look that is not,
/// made `limit` or more after the start, ends the wait with what it saw.
pub async fn until<T, S, F, Fut>(every: Duration, limit: Duration, mut look: F) -> Result<T, TimedOut<S>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Look<T, S>>,
{
    let started = Instant::now();
    loop {
        match look().await {
            Look::Ready(found) => return Ok(found),
            Look::Seen(last) if started.elapsed() >= limit => return Err(TimedOut { last, limit }),
            Look::Seen(_) => {}
        }
        tokio::time::sleep(every).await;
    }
}

/// A build's view says it is finished: `deployed` or `failed`.
pub fn finished(build: &serde_json::Value) -> bool {
    build["status"] == "deployed" || build["status"] == "failed"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_ends_with_what_it_waited_for_or_the_last_thing_seen() {
        let mut looks = 0;
        let found = until(Duration::from_millis(1), Duration::from_secs(5), || {
            looks += 1;
            let n = looks;
            async move {
                if n == 3 {
                    Look::Ready(n)
                } else {
                    Look::Seen(n)
                }
            }
        })
        .await;
        assert_eq!(found.unwrap(), 3);

        let mut looks = 0;
        let timed_out = until(Duration::from_millis(1), Duration::from_millis(20), || {
            looks += 1;
            let n = looks;
            async move { Look::<(), _>::Seen(n) }
        })
        .await
        .unwrap_err();
        assert_eq!(timed_out.last, looks);
        assert_eq!(timed_out.limit, Duration::from_millis(20));
    }
}
