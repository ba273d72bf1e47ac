//! What the preview listener answers besides a whole file: the methods it takes (`GET`, `HEAD`;
//! anything else is a 405 naming them in `Allow`), conditional requests (`If-None-Match` with a
//! list of tags, weak or strong, or `*`) and single byte ranges (`Range`, `If-Range`: 206, or 416
//! for a range past the end). The headers are parsed with actix-web's typed headers.
//!
//! Decisions (RFC 9110 leaves them to the server):
//! - A request for several ranges gets the whole file (200): browsers and media players ask for
//!   one, and a multipart answer would only serve download managers.
//! - A ranged answer is always the file's content, never its stored gzip form: a range of a
//!   compressed stream is useless to a player, and `Content-Range` then counts the bytes a
//!   client sees.
//! - `If-Range` with a date is never a match (previews carry no `Last-Modified`), so it gets the
//!   whole file, as RFC 9110 §13.1.5 asks of a validator the server cannot compare.
//! - An invalid `Range` header is ignored (RFC 9110 §14.2), as is one in a unit other than bytes.

use actix_web::http::header::{
    self, ByteRangeSpec, EntityTag, Header, HeaderValue, IfNoneMatch, IfRange, Range,
};
use actix_web::http::Method;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};

use crate::error::ApiError;

/// The methods the preview listener answers.
pub const ALLOW: &str = "GET, HEAD";

/// `None` for a method the preview listener serves, else its 405 answer (with `Allow`).
pub fn refuse_method(req: &HttpRequest) -> Option<HttpResponse> {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let mut res = actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed(format!(
        "the preview server answers {ALLOW}, not {}",
        req.method()
    )));
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    Some(res)
}

/// Whether the client's `If-None-Match` holds `etag` (weak comparison, as RFC 9110 §13.1.2 asks
/// of it), or is `*`. A header that does not parse matches nothing. The preview listener and a
/// version's file route (through [`super::Representation::not_modified`]) both answer with it.
pub fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    let Ok(ours) = etag.parse::<EntityTag>() else {
        return false;
    };
    match req.get_header::<IfNoneMatch>() {
        Some(IfNoneMatch::Any) => true,
        Some(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(&ours)),
        None => false,
    }
}

/// The part of a file of `len` bytes a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// No usable `Range` (absent, invalid, several ranges, or `If-Range` does not match).
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// A single range that starts past the end: 416.
    Unsatisfiable,
}

/// Whether the request has a `Range` header at all (it then gets the file's content, so its
/// validators are the content's: see [`ranged`]).
pub fn asks_range(req: &HttpRequest) -> bool {
    req.method() == Method::GET && req.headers().contains_key(header::RANGE)
}

/// The range a GET asks for of the representation tagged `etag` (strong) with `len` bytes.
pub fn ranged(req: &HttpRequest, etag: &str, len: u64) -> Ranged {
    if !asks_range(req) {
        return Ranged::Whole;
    }
    if req.headers().contains_key(header::IF_RANGE) {
        let current = etag.parse::<EntityTag>().ok();
        let holds = match (IfRange::parse(req), current) {
            (Ok(IfRange::EntityTag(tag)), Some(ours)) => tag.strong_eq(&ours),
            _ => false,
        };
        if !holds {
            return Ranged::Whole;
        }
    }
    let spec = match Range::parse(req) {
        Ok(Range::Bytes(specs)) if specs.len() == 1 => specs[0].clone(),
        _ => return Ranged::Whole,
    };
    if let ByteRangeSpec::FromTo(from, to) = spec {
        if from > to {
            // Not a valid range (RFC 9110 §14.1.1): the header is ignored.
            return Ranged::Whole;
        }
    }
    match spec.to_satisfiable_range(len) {
        Some((start, end)) => Ranged::Part { start, end },
        None => Ranged::Unsatisfiable,
    }
}

/// The 416 answer for a file of `len` bytes.
pub fn unsatisfiable(len: u64) -> HttpResponse {
    let mut res = actix_web::ResponseError::error_response(&ApiError::RangeNotSatisfiable(format!(
        "the range is outside the file's {len} bytes"
    )));
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
        res.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn get(headers: &[(&str, &str)]) -> HttpRequest {
        let mut req = TestRequest::get();
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        req.to_http_request()
    }

    #[test]
    fn if_none_match_takes_lists_weak_tags_and_any() {
        let tag = "\"abc\"";
        assert!(!not_modified(&get(&[]), tag));
        assert!(not_modified(&get(&[("if-none-match", "\"abc\"")]), tag));
        assert!(not_modified(&get(&[("if-none-match", "W/\"abc\"")]), tag));
        assert!(not_modified(
            &get(&[("if-none-match", "\"x\", W/\"y\", \"abc\"")]),
            tag
        ));
        assert!(not_modified(&get(&[("if-none-match", "*")]), tag));
        assert!(!not_modified(&get(&[("if-none-match", "\"abcd\"")]), tag));
        assert!(!not_modified(&get(&[("if-none-match", "abc")]), tag));
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        let r = |h: &[(&str, &str)]| ranged(&get(h), "\"t\"", 100);
        assert_eq!(r(&[]), Ranged::Whole);
        assert_eq!(r(&[("range", "bytes=0-9")]), Ranged::Part { start: 0, end: 9 });
        assert_eq!(r(&[("range", "bytes=90-")]), Ranged::Part { start: 90, end: 99 });
        assert_eq!(r(&[("range", "bytes=-10")]), Ranged::Part { start: 90, end: 99 });
        // Past the end is clipped; starting past it is unsatisfiable.
        assert_eq!(
            r(&[("range", "bytes=50-500")]),
            Ranged::Part { start: 50, end: 99 }
        );
        assert_eq!(r(&[("range", "bytes=100-")]), Ranged::Unsatisfiable);
        // Several ranges, other units and nonsense get the whole file.
        assert_eq!(r(&[("range", "bytes=0-1, 5-6")]), Ranged::Whole);
        assert_eq!(r(&[("range", "items=0-1")]), Ranged::Whole);
        assert_eq!(r(&[("range", "bytes=9-2")]), Ranged::Whole);
        assert_eq!(r(&[("range", "bytes=x")]), Ranged::Whole);
        // If-Range: a strong match serves the range, anything else the whole file.
        assert_eq!(
            r(&[("range", "bytes=0-0"), ("if-range", "\"t\"")]),
            Ranged::Part { start: 0, end: 0 }
        );
        assert_eq!(
            r(&[("range", "bytes=0-0"), ("if-range", "\"old\"")]),
            Ranged::Whole
        );
        assert_eq!(
            r(&[("range", "bytes=0-0"), ("if-range", "W/\"t\"")]),
            Ranged::Whole
        );
        assert_eq!(
            r(&[
                ("range", "bytes=0-0"),
                ("if-range", "Sun, 06 Nov 1994 08:49:37 GMT")
            ]),
            Ranged::Whole
        );
        // An empty file has no satisfiable range.
        assert_eq!(
            ranged(&get(&[("range", "bytes=0-")]), "\"t\"", 0),
            Ranged::Unsatisfiable
        );
    }

    #[test]
    fn other_methods_are_refused_with_allow() {
        let post = TestRequest::post().to_http_request();
        let res = refuse_method(&post).expect("a POST is refused");
        assert_eq!(res.status(), 405);
        assert_eq!(res.headers().get(header::ALLOW).unwrap(), ALLOW);
        assert!(refuse_method(&get(&[])).is_none());
        assert!(refuse_method(&TestRequest::default().method(Method::HEAD).to_http_request()).is_none());
    }
}
