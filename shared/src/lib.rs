//! kiln-shared: what the API, the builder daemons and the CLI agree on.
//!
//! - [`domain`]: typed values parsed at the edge (ids, paths, files, statuses).
//! - [`config`]: `KILN_*` settings in layers (defaults, optional TOML file, environment).
//! - [`db`]: the Postgres repository (version history) and its migrations.
//! - [`redis`]: the build stream, in-flight claims, the latest pointer (KV) and idempotency records.
//! - [`store`]: the content-addressed artifact store (filesystem or S3) and manifests.
//! - [`signing`]: HMAC request signatures.
//! - [`preview`]: preview host labels and URLs.
//! - [`consistency`]: repairs between Postgres and Redis (lost entries, lost claims, stale slots).
//! - [`metrics`]: Prometheus metrics of a process, and the farm-wide gauges the API reads.
//! - [`Backends`]: the connections above, assembled once for a binary's [`Role`].
//! - [`backoff`]: jittered, growing delays for the loops that reconnect.

pub mod backends;
pub mod backoff;
pub mod config;
pub mod consistency;
pub mod db;
pub mod domain;
pub mod metrics;
pub mod preview;
pub mod redis;
pub mod secrets;
pub mod signing;
pub mod store;
pub mod telemetry;
pub mod webhooks;

pub use backends::{Backends, BackendsError, Role};
