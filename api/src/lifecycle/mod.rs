//! Projects and users removed: [`project`] deletes one project (its builds cancelled, its rows
//! in batches, its logs and manifests, its Redis keys); [`users`] deletes every project of a
//! user as a recorded, resumable job that a background task of any API instance works on under
//! a lease. The blobs a deleted project's versions used are left to `kiln-ops maintain`'s blob GC,
//! which collects them once no version references them.

pub mod project;
pub mod users;

pub use project::{delete_project, Deleted};
pub use users::Deleter;
