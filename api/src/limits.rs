//! What one client may ask of this API process: requests per client IP (`governor`, in
//! process), event and log streams open at once per client IP, and the caps every request
//! passes through ([`guard`]): the size of its head, the time its body may take, and a JSON
//! answer for every refusal (including the ones actix-web makes by itself).
//!
//! Who is counted. The per-IP limit is for user tokens, failed or missing credentials and
//! public routes: it throttles guessing tokens and signatures. Operator tokens and the product
//! back end's signed requests are not counted: they carry every user's traffic from a few
//! addresses, and are throttled per user and per project by the fleet-wide quotas instead
//! (admission). `/healthz` and `/readyz` are not counted either (load balancers poll them).
//!
//! The client IP. The peer's address, unless the peer is one of `KILN_TRUSTED_PROXIES`: then
//! the address in `KILN_CLIENT_IP_HEADER` (`X-Forwarded-For`: the right-most address that is not
//! itself a trusted proxy; a one-address header such as `CF-Connecting-IP` as it is). The header
//! from any other peer is ignored, so a client cannot choose its own bucket. IPv6 clients are
//! counted per /64 (one host usually holds a whole /64).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderMap};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures::StreamExt;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use kiln_shared::config::LimitSettings;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// How often the per-IP limiter forgets clients whose bucket is full again.
pub const FORGET_EVERY: Duration = Duration::from_secs(60);

/// The client's address as [`guard`] found it (a request extension, also an extractor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// This process's per-IP limiter and open streams.
pub struct Limits {
    settings: LimitSettings,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    streams: Mutex<HashMap<IpAddr, u32>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Limits {
    pub fn new(settings: &LimitSettings) -> Self {
        let per_ip = settings.per_ip.map(|rate| {
            let count = std::num::NonZeroU32::new(rate.count).expect("the rate's count is positive");
            // The whole allowance at once, then one more each `per / count`: 100/hour is a burst
            // of 100, then one every 36 s.
            let quota = Quota::with_period(rate.per / rate.count)
                .expect("a positive period")
                .allow_burst(count);
            DefaultKeyedRateLimiter::keyed(quota)
        });
        Self {
            settings: settings.clone(),
            per_ip,
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// The client's address: the peer's, or the trusted proxy's header's (see the module).
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> IpAddr {
        let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.to_canonical());
        if !self.settings.trusts(peer) {
            return peer;
        }
        match self.forwarded_client(headers) {
            Some(ip) => ip,
            None => {
                tracing::debug!(%peer, header = %self.settings.client_ip_header,
                    "a trusted proxy sent no usable client address; counting the proxy");
                peer
            }
        }
    }

    fn forwarded_client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        let mut hops = Vec::new();
        for value in headers.get_all(self.settings.client_ip_header.as_str()) {
            for hop in value.to_str().ok()?.split(',') {
                hops.push(parse_hop(hop)?);
            }
        }
        // Each proxy appends the address it got the request from: the right-most address that
        // is not one of ours is the client (everything left of it the client could have written).
        hops.iter()
            .rev()
            .find(|ip| !self.settings.trusts(**ip))
            .or(hops.first())
            .copied()
    }

    /// The client address [`guard`] found for `req` (found again if it has not run).
    pub fn client_of(&self, req: &HttpRequest) -> IpAddr {
        match req.extensions().get::<ClientIp>() {
            Some(ip) => ip.0,
            None => self.client_ip(req.peer_addr().map(|a| a.ip()), req.headers()),
        }
    }

    /// Counts one request of `ip`; a 429 with `Retry-After` once its allowance is used up.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        let Some(limiter) = &self.per_ip else {
            return Ok(());
        };
        limiter.check_key(&bucket(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let rate = self.settings.per_ip.expect("a limiter has a rate");
            ApiError::TooManyRequests {
                message: format!(
                    "rate limit exceeded: {rate} per client address; retry in {} s",
                    crate::error::retry_secs(wait)
                ),
                retry_after: wait,
                quota: None,
            }
        })
    }

    /// Forgets the clients whose allowance is whole again (they would start afresh anyway), so
    /// the limiter holds only the clients seen within about one period.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.per_ip {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Clients the per-IP limiter remembers now.
    pub fn remembered(&self) -> usize {
        self.per_ip.as_ref().map_or(0, |l| l.len())
    }

    /// A place for one more event or log stream of `ip`; a 429 when it has
    /// `KILN_MAX_STREAMS_PER_CLIENT` open. The operator and the back end are not capped (they
    /// relay many users' streams). The place is given back when the permit drops, which is when
    /// the stream's body ends or its client goes.
    pub fn open_stream(
        self: &Arc<Self>,
        caller: &Caller,
        ip: IpAddr,
    ) -> Result<Option<StreamPermit>, ApiError> {
        let Some(max) = self.settings.max_streams_per_client else {
            return Ok(None);
        };
        if caller.user().is_none() {
            return Ok(None);
        }
        let key = bucket(ip);
        let mut streams = self.streams.lock().expect("streams lock poisoned");
        let open = streams.entry(key).or_insert(0);
        if *open >= max {
            return Err(ApiError::TooManyRequests {
                message: format!(
                    "too many streams: {max} event or log streams are already open from this client address; close one first"
                ),
                retry_after: Duration::from_secs(1),
                quota: None,
            });
        }
        *open += 1;
        Ok(Some(StreamPermit {
            limits: self.clone(),
            key,
        }))
    }
}

/// One open stream's place ([`Limits::open_stream`]).
pub struct StreamPermit {
    limits: Arc<Limits>,
    key: IpAddr,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut streams = self.limits.streams.lock().expect("streams lock poisoned");
        if let Some(open) = streams.get_mut(&self.key) {
            *open -= 1;
            if *open == 0 {
                streams.remove(&self.key);
            }
        }
    }
}

/// The key a client is counted under: its address, or its /64 for IPv6.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// One address of a client-IP header: `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`, or with a
/// port (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim().trim_matches('"');
    raw.parse::<IpAddr>()
        .ok()
        .or_else(|| raw.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            raw.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse().ok())
        })
        .map(|ip: IpAddr| ip.to_canonical())
}

impl FromRequest for ClientIp {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(req.extensions().get::<ClientIp>().copied().ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "a handler that needs a ClientIp runs without guard"
            ))
        }))
    }
}

/// An extractor for public routes: counts the request against its client's per-IP allowance
/// (unless an authenticated caller's was already counted, or is exempt).
pub struct Public;

impl FromRequest for Public {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if req.extensions().get::<Caller>().is_some() {
            return std::future::ready(Ok(Public));
        }
        let state = req
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered");
        let ip = state.limits.client_of(req);
        std::future::ready(state.limits.check_ip(ip).map(|()| Public))
    }
}

/// Every API request passes through here first: its client address is found, its head is
/// held to `KILN_MAX_HEADER_KB`, its body to `KILN_REQUEST_BODY_TIMEOUT_SECS`, and any refusal
/// that is not JSON yet (actix-web's own: a payload over the cap, a wrong method) becomes
/// `{"error": ...}`.
pub async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered")
        .clone();
    let settings = &state.settings.limits;
    let ip = state
        .limits
        .client_ip(req.peer_addr().map(|a| a.ip()), req.headers());
    req.extensions_mut().insert(ClientIp(ip));

    let head = head_size(&req);
    if head > settings.max_header_bytes {
        let err = ApiError::HeadersTooLarge(format!(
            "the request line and headers are {head} bytes; the limit is {} KB",
            settings.max_header_bytes / 1024
        ));
        return Ok(req.error_response(err));
    }

    let timed_out = Arc::new(AtomicBool::new(false));
    if has_body(req.headers()) {
        let payload = deadline(req.take_payload(), settings.body_timeout, timed_out.clone());
        req.set_payload(payload);
    }
    let res = next.call(req).await?;
    if timed_out.load(Ordering::Relaxed) {
        let err = ApiError::RequestTimeout(format!(
            "the request body did not arrive within {} s",
            settings.body_timeout.as_secs()
        ));
        let (req, _) = res.into_parts();
        return Ok(ServiceResponse::new(
            req,
            actix_web::ResponseError::error_response(&err),
        ));
    }
    Ok(as_json(res.map_into_boxed_body(), state.settings.max_body_bytes))
}

/// The request line and headers, counted as they are sent (`name: value\r\n`).
fn head_size(req: &ServiceRequest) -> usize {
    let line = req.method().as_str().len() + req.uri().path().len() + req.query_string().len() + 12;
    req.headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + line
}

fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.to_str().map_or(true, |v| v.trim() != "0"))
}

/// The body, cut off with an error once `timeout` has passed since the request's head arrived.
fn deadline(payload: Payload, timeout: Duration, timed_out: Arc<AtomicBool>) -> Payload {
    let sleep = Box::pin(tokio::time::sleep(timeout));
    let stream = futures::stream::unfold(Some((payload, sleep)), move |open| {
        let timed_out = timed_out.clone();
        async move {
            let (mut payload, mut sleep) = open?;
            tokio::select! {
                chunk = payload.next() => chunk.map(|c| (c, Some((payload, sleep)))),
                () = sleep.as_mut() => {
                    timed_out.store(true, Ordering::Relaxed);
                    let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "the request body took too long");
                    Some((Err(PayloadError::Io(e)), None))
                }
            }
        }
    });
    let boxed: std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(stream);
    Payload::from(boxed)
}

/// An error answer that is not JSON (actix-web's own) as `{"error": "<what is wrong>"}`.
fn as_json(res: ServiceResponse<BoxBody>, max_body: usize) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let message = match res.response().error() {
        // The body extractor's cap (`KILN_MAX_BODY_MB`), said as the signed path says it.
        _ if status == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the request body is larger than {} MB", max_body / (1024 * 1024))
        }
        Some(e) if !e.to_string().is_empty() => e.to_string(),
        _ => status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_ascii_lowercase(),
    };
    let (req, old) = res.into_parts();
    let mut new = HttpResponse::build(status);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.append_header((name.clone(), value.clone()));
        }
    }
    ServiceResponse::new(req, new.json(serde_json::json!({ "error": message })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn limits(trusted: &[&str], header: &str) -> Limits {
        let mut s = LimitSettings {
            trusted_proxies: trusted.iter().map(|c| c.parse().unwrap()).collect(),
            ..LimitSettings::default()
        };
        s.client_ip_header = header.into();
        Limits::new(&s)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let l = limits(&["10.0.0.0/8"], "x-forwarded-for");
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(l.client_ip(Some(ip("198.51.100.1")), &h), ip("198.51.100.1"));
        assert_eq!(l.client_ip(Some(ip("10.1.1.1")), &h), ip("203.0.113.9"));
        // No header, or garbage: the proxy itself.
        assert_eq!(l.client_ip(Some(ip("10.1.1.1")), &headers(&[])), ip("10.1.1.1"));
        let junk = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(l.client_ip(Some(ip("10.1.1.1")), &junk), ip("10.1.1.1"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let l = limits(&["10.0.0.0/8"], "x-forwarded-for");
        // The client wrote "1.2.3.4" itself; 203.0.113.9 is who reached our proxy chain.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.7")]);
        assert_eq!(l.client_ip(Some(ip("10.0.0.8")), &h), ip("203.0.113.9"));
        let split = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "[2001:db8::5]:443"),
        ]);
        assert_eq!(l.client_ip(Some(ip("10.0.0.8")), &split), ip("2001:db8::5"));
        let cf = limits(&["192.0.2.0/24"], "cf-connecting-ip");
        let h = headers(&[
            ("cf-connecting-ip", "198.51.100.77"),
            ("x-forwarded-for", "6.6.6.6"),
        ]);
        assert_eq!(cf.client_ip(Some(ip("192.0.2.10")), &h), ip("198.51.100.77"));
        assert_eq!(
            cf.client_ip(Some(ip("::ffff:192.0.2.10")), &h),
            ip("198.51.100.77"),
            "an IPv4-mapped peer is its IPv4 address"
        );
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        assert_eq!(bucket(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(bucket(ip("192.0.2.1")), ip("192.0.2.1"));
    }
}
