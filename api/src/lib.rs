//! kiln-api: the HTTP front end of a Kiln farm. Two listeners: the API (`KILN_API_ADDR`) and the
//! previews (`KILN_PREVIEW_ADDR`, a separate origin because preview content is untrusted).

mod admission;
mod auth;
mod diff;
mod error;
mod events;
mod export;
mod lifecycle;
mod limits;
mod logs;
mod preview;
mod queue_estimate;
mod rollback;
mod routes;
mod startup;
mod state;
pub mod untrusted;
mod views;

pub use startup::Application;
