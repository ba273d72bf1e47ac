//! Queries on the `versions` table, one version (= one build) a row:
//!
//! - `row`: the row as read ([`Version`]), its timings and sizes ([`Metrics`]);
//! - `insert`: the queued rows admission writes, rollback rows, the pin;
//! - `attempt`: the attempt state machine, with every legal status change in [`TRANSITIONS`];
//! - `read`: one version, the latest deployed ones, lists, and the queue's figures.

mod attempt;
mod insert;
mod read;
mod row;

pub use attempt::{
    attempt_of, cancel, fail_lost, hand_back, is_legal, mark_deployed, mark_failed, start, supersede,
    take_over, Deployed, Failed, TakeOver, Transition, TRANSITIONS,
};
pub use insert::{delete_rollback, delete_unclaimed, insert_queued, insert_rollback, set_pinned, NewVersion};
pub use read::{
    active_builds, deployed_with_key, env_of, get, latest_deployed, latest_deployed_each,
    latest_deployed_page, list, newer_of_project, project_by_label, queue_standing, queued_before,
    running_before, user_of, ActiveBuilds, ListFilter, QueueStanding, RECENT_BUILDS,
};
pub use row::{Metrics, Version};
