//! Delays for the loops that run as long as their process and retry what failed: Pub/Sub
//! subscriptions, the workers' reads of the stream, the warm sandbox pool. Exponential with
//! jitter (`backon`): after a Redis restart, every API instance and builder of a fleet reconnects
//! at once, and without jitter they would keep coming back in lockstep.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// The delay before each next attempt of a loop: from `min`, doubling up to `max`, each with a
/// random jitter of up to the delay itself (so between `d` and `2d`); [`Backoff::reset`] after a
/// success starts again from `min`. Never runs out.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let builder = ExponentialBuilder::new()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_jitter()
            .without_max_times();
        Self {
            delays: builder.build(),
            builder,
            max,
        }
    }

    /// How long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.max)
    }

    /// The last attempt worked: the next failure waits the shortest delay again.
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_and_start_over_after_a_reset() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        let mut b = Backoff::new(min, max);
        let first: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        // Each delay d of the schedule 100, 200, 400 … 2000 ms comes out between d and 2d.
        let mut d = min;
        for got in &first {
            assert!(*got >= d && *got <= d * 2, "{got:?} for {d:?}");
            d = (d * 2).min(max);
        }
        // Jitter: twelve draws are not all on the schedule.
        let mut d = min;
        let on_schedule = first.iter().all(|got| {
            let hit = *got == d;
            d = (d * 2).min(max);
            hit
        });
        assert!(!on_schedule, "{first:?}");
        b.reset();
        let again = b.next_delay();
        assert!(again >= min && again <= min * 2, "{again:?}");
    }
}
