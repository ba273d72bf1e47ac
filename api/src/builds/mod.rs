//! The build lifecycle: a request admitted into the queue, replaced by a newer one, cancelled,
//! retried, estimated while it waits, and a project rolled back. Each module uses only the ones
//! listed before it:
//!
//! - [`request`]: the request's wire body, parsed into typed values, and the answer `Queued`;
//! - [`batch`]: admission's Postgres statements, batched across concurrent requests;
//! - [`context`]: [`Builds`], the connections the modules below work with (not the whole API
//!   state);
//! - [`slot`]: who holds a project's slot (a build or a rollback), and whether it still does;
//! - [`cancel`]: a queued or running build stopped;
//! - [`enqueue`]: a new row queued, claiming the project's slot (replacing its holder as the
//!   request allows, which may cancel it);
//! - [`admit`]: a parsed request's base and sources resolved, then enqueued;
//! - [`retry`]: a failed or cancelled build's sources enqueued again;
//! - [`redeploy`]: a version's sources enqueued with the project's settings and environment
//!   as they are now;
//! - [`estimate`]: where a queued build stands and when it should start;
//! - [`rollback`]: the project's latest pointer moved, holding its slot meanwhile.
//!
//! This file only declares them and names what the rest of the API uses.

pub mod admit;
pub mod batch;
pub mod cancel;
pub mod context;
pub mod enqueue;
pub mod estimate;
pub mod redeploy;
pub mod request;
pub mod retry;
pub mod rollback;
pub mod slot;

pub use admit::admit;
pub use batch::AdmissionDb;
pub use cancel::cancel;
pub use context::Builds;
pub use redeploy::redeploy;
pub use request::{parse_force, BuildRequest, BuildRequestBody, Queued};
pub use retry::retry;
pub use rollback::rollback;
