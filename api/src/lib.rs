//! kiln-api: the HTTP front end of a Kiln farm. Two listeners: the API (`KILN_API_ADDR`) and the
//! previews (`KILN_PREVIEW_ADDR`, a separate origin because preview content is untrusted).
//!
//! From the bottom up: `error` and `caller` (who is calling) depend on nothing of the API; the
//! build lifecycle (`builds/`) on those; `limits`, `events` and the `state` every handler
//! reaches above them, and `lifecycle` (projects and users deleted) on the state; then the middleware (`telemetry`, `guard`, `auth`), `idempotency`, the `preview`
//! server and the HTTP `routes/`; `startup` wires them together.

mod auth;
mod builds;
mod caller;
mod diff;
mod error;
mod events;
mod export;
mod guard;
mod idempotency;
mod lifecycle;
mod limits;
mod logs;
mod preview;
pub mod problem;
mod routes;
mod startup;
mod state;
mod telemetry;
pub mod untrusted;
mod views;

pub use startup::Application;
