//! One module per resource, and [`parse`]: a request's JSON body and query string, read the
//! same way by every route.

pub mod builders;
pub mod builds;
pub mod events;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod parse;
pub mod projects;
pub mod tokens;
pub mod versions;
pub mod webhooks;
