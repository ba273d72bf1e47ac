//! Hostile input: each case is a 4xx with a JSON message that says what is wrong, nothing is
//! stored or queued, and the service is healthy after.
//!
//! Every request goes out as raw bytes on a TCP connection ([`wire::Send`]), so nothing between
//! the test and the API normalises a path (`..`, `%2e`), drops a header or refuses invalid UTF-8.
//! Each test runs a table of cases ([`table`]) and prints how many it refused (`hostile <group>:
//! N cases, all refused`, with `--nocapture`); the totals are in README's "Hostile input"
//! section. One file per subject:
//!
//! - [`build_requests`]: build request bodies (paths, files, encodings, sizes, nesting);
//! - [`url_paths`]: traversal in URL paths and preview hosts, malformed and unknown ids;
//! - [`requests`]: the other routes' bodies, queries and headers;
//! - [`signatures`]: replays, forged signatures and nonces;
//! - [`credentials`]: credentials from the wrong place;
//! - [`tenants`]: a user token against another user's resources on every route;
//! - [`projects`]: a project's settings and share links.

mod build_requests;
mod credentials;
mod inputs;
mod projects;
mod requests;
mod signatures;
mod table;
mod tenants;
mod url_paths;
mod wire;
