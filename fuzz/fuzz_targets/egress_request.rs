//! A request head a build sends its egress proxy (a security boundary: the build is untrusted,
//! the proxy decides where it may connect). Whatever the bytes: a tunnel to a non-empty host
//! and a real port, a forward whose head is one well-formed request naming exactly the host it
//! is sent to and carrying no proxy credentials, or a refusal; never a panic.
#![no_main]

use kiln_builder::untrusted::{host_header, proxy_request, ProxyRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|head: &[u8]| {
    match proxy_request(head) {
        Err(message) => assert!(!message.is_empty()),
        Ok(ProxyRequest::Tunnel { host, port }) => {
            assert!(!host.is_empty() && port != 0);
            assert_eq!(host, host.to_ascii_lowercase());
        }
        Ok(ProxyRequest::Forward {
            host,
            port,
            head: sent,
        }) => {
            assert!(!host.is_empty() && port != 0);
            let mut headers = [httparse::EMPTY_HEADER; 128];
            let mut req = httparse::Request::new(&mut headers);
            let parsed = req.parse(&sent).expect("the forwarded head parses");
            assert_eq!(
                parsed,
                httparse::Status::Complete(sent.len()),
                "one head, nothing after it"
            );
            assert!(req.path.is_some_and(|p| p.starts_with('/')), "origin-form target");
            let hosts: Vec<_> = req
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("host"))
                .collect();
            assert_eq!(hosts.len(), 1, "exactly one Host");
            let named = std::str::from_utf8(hosts[0].value).expect("an ASCII Host");
            assert_eq!(
                named,
                host_header(&host, port),
                "the Host of a request sent to {host}:{port}"
            );
            for dropped in ["proxy-authorization", "proxy-connection", "keep-alive"] {
                assert!(
                    !req.headers.iter().any(|h| h.name.eq_ignore_ascii_case(dropped)),
                    "{dropped} forwarded"
                );
            }
        }
    }
});
