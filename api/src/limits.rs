//! What one client may ask of this API process: requests per client IP (`governor`, in
//! process) and event and log streams open at once per client IP. The caps every request
//! passes through (the size of its head, the time its body may take) are [`crate::guard`]'s.
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use kiln_shared::config::LimitSettings;

use crate::caller::Caller;
use crate::error::ApiError;

/// How often the per-IP limiter forgets clients whose bucket is full again.
pub const FORGET_EVERY: Duration = Duration::from_secs(60);

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

    /// Counts one request of `ip`; a 429 with `Retry-After` once its allowance is used up.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        let Some(limiter) = &self.per_ip else {
            return Ok(());
        };
        limiter.check_key(&bucket(ip)).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let rate = self.settings.per_ip.expect("a limiter has a rate");
            ApiError::RateLimited {
                message: format!(
                    "rate limit exceeded: {rate} per client address; retry in {} s",
                    crate::error::retry_secs(wait)
                ),
                retry_after: wait,
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
            return Err(ApiError::TooManyStreams {
                message: format!(
                    "too many streams: {max} event or log streams are already open from this client address; close one first"
                ),
                retry_after: Duration::from_secs(1),
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
