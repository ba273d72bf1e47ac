//! kiln-testkit: what Kiln's harnesses share (the API's integration tests, `kiln-ops`'
//! maintenance tests, the benchmark and the chaos suite), so that each is written once:
//!
//! - [`env`]: the `KILN_*` variables the harness scripts (`ops/test.sh`, `ops/bench/run.sh`,
//!   `ops/chaos/run.sh`) hand over, and the error that names the script to run;
//! - [`signed`]: requests signed as the product back end (HMAC over timestamp, nonce, method,
//!   path and body, as the API verifies them);
//! - [`poll`]: looking again and again until something holds or a limit passes (a build's
//!   status, a fleet's heartbeats);
//! - [`answer`]: an HTTP answer as its status and JSON body;
//! - [`binary`]: a Kiln binary run with an environment of its own, and what its `--help` lists.

pub mod answer;
pub mod binary;
pub mod env;
pub mod poll;
pub mod signed;
