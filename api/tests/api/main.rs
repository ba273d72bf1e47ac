//! kiln-api's integration tests: the real API on port 0, real Postgres (a database per test),
//! real Redis (a key prefix per test), real pnpm, and the filesystem or S3 (Garage) store.
//! Run them through `ops/test.sh`, which starts those services.

mod affinity;
mod audit;
mod auth;
mod build_one;
mod builds;
mod checks;
mod contained;
mod conventions;
mod diagnostics;
mod docs;
mod env;
mod events;
mod fleet;
mod frameworks;
mod helpers;
mod hostile;
mod lifecycle;
mod limits;
mod logs;
mod metrics;
mod openapi;
mod package_cache;
mod packages;
mod previews;
mod private;
mod problems;
mod queue;
mod reuse;
mod sandbox;
mod schemas;
mod settings;
mod telemetry;
mod tenants;
mod tokens;
mod versions;
mod warm_trees;
mod webhooks;
