//! The builder's parsers of input a build controls, public for the fuzz targets (`fuzz/`).
//! Whatever the input, each returns a typed value or an error message, and never panics; the
//! daemon calls the same code.

pub use crate::sandbox::egress::{host_header, Request as ProxyRequest};

/// A request head a build sent to its egress proxy (everything up to and including the blank
/// line): a tunnel to open, a plain-HTTP request to forward with the head to send, or why it is
/// refused. Which hosts are allowed is decided after this, by the proxy.
pub fn proxy_request(head: &[u8]) -> Result<ProxyRequest, String> {
    crate::sandbox::egress::parse(head)
}
