//! [`TestApp::build_one`]: one build run by a builder stepped by hand
//! ([`kiln_builder::Builder::step`]), for tests about what a build does rather than about the
//! daemon that runs builds (its loop, leases, fleet or concurrency): no daemon polls the
//! stream, and the test polls nothing: the build is over when the call returns.

use std::time::{Duration, Instant};

use kiln_builder::{Builder, StepOutcome};
use serde_json::Value;

use crate::helpers::TestApp;

/// How long the build's entry may take to reach the stream (it is there when the API answers
/// 202: this only bounds a test that went wrong).
const FIND_WITHIN: Duration = Duration::from_secs(30);

impl TestApp {
    /// Runs the build `id`, submitted and waiting in the stream, on a builder of this farm that
    /// takes exactly one build (the app must run no builder daemon, `builders: 0`, or one
    /// could take it first), and returns the build as `GET /v1/builds/{id}` shows it. Its
    /// outcome, log, events and latest pointer are all recorded by then.
    pub async fn build_one(&self, id: &str) -> Value {
        let builder = Builder::connect(self.settings.clone())
            .await
            .expect("the builder connects");
        let mut reader = builder.reader();
        let started = Instant::now();
        loop {
            match builder.step(&mut reader).await.expect("the builder steps") {
                StepOutcome::Built(built) => {
                    assert_eq!(built.to_string(), id, "the builder took another build");
                    break;
                }
                StepOutcome::Empty => {
                    assert!(started.elapsed() < FIND_WITHIN, "build {id} is not in the stream")
                }
                StepOutcome::Deferred(other) => panic!("the builder put build {other} back"),
                StepOutcome::HandedOn(other) => panic!("the builder handed build {other} on"),
            }
        }
        builder.close();
        self.get_json(&format!("/v1/builds/{id}")).await
    }
}
