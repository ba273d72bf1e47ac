//! The API's limits: the per-IP rate limit, the fleet-wide quotas, and the caps on requests
//! and streams (`KILN_RATE_LIMIT_PER_IP`, `KILN_QUOTA_*`, `KILN_MAX_*`, timeouts).

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::source::{ConfigError, Source};

use super::definition::{section, Fallback, Kind, Variable, API};

section! {
    title: "Limits",
    intro: "The API's per-client rate limit, the fleet-wide quotas, and the caps on requests and streams (docs/reference/limits.md).",
    RATE_LIMIT_PER_IP = Variable::new(
        "KILN_RATE_LIMIT_PER_IP",
        Kind::Format("`N/second`, `N/minute`, `N/hour`, or `off`"),
        Fallback::Value("100/hour"),
        API,
        "requests per client address, per API process",
    )
    .details(
        "User tokens, bad or missing credentials and public routes only: operator tokens, the \
         back end's signed requests and `/healthz`, `/readyz` are not counted.",
    );
    TRUSTED_PROXIES = Variable::new(
        "KILN_TRUSTED_PROXIES",
        Kind::Format("CIDRs or addresses, comma-separated"),
        Fallback::Otherwise("none"),
        API,
        "peers whose client-address header is believed",
    )
    .details(
        "Behind a reverse proxy on the API's host, its address (nginx: `proxy_set_header \
         X-Forwarded-For $proxy_add_x_forwarded_for`), else every client is counted as the \
         proxy; behind Cloudflare, its ranges and `CF-Connecting-IP`.",
    )
    .example("127.0.0.1/32");
    CLIENT_IP_HEADER = Variable::new(
        "KILN_CLIENT_IP_HEADER",
        Kind::Format("a header name"),
        Fallback::Value("X-Forwarded-For"),
        API,
        "the header a trusted proxy puts the client's address in",
    );
    QUOTA_NEW_PROJECTS_PER_HOUR = Variable::new(
        "KILN_QUOTA_NEW_PROJECTS_PER_HOUR",
        Kind::PositiveOrOff,
        Fallback::Value("5"),
        API,
        "first builds of new projects per user per hour, fleet-wide",
    );
    QUOTA_REBUILDS_PER_HOUR = Variable::new(
        "KILN_QUOTA_REBUILDS_PER_HOUR",
        Kind::PositiveOrOff,
        Fallback::Value("20"),
        API,
        "builds after a project's first, per project per hour, fleet-wide",
    );
    MAX_STREAMS_PER_CLIENT = Variable::new(
        "KILN_MAX_STREAMS_PER_CLIENT",
        Kind::PositiveOrOff,
        Fallback::Value("8"),
        API,
        "event and log streams open at once per client address, in this process (user tokens)",
    );
    MAX_HEADER_KB = Variable::new(
        "KILN_MAX_HEADER_KB",
        Kind::Positive,
        Fallback::Value("16"),
        API,
        "the request line and headers together, in KB (at most 64)",
    );
    REQUEST_HEAD_TIMEOUT_SECS = Variable::new(
        "KILN_REQUEST_HEAD_TIMEOUT_SECS",
        Kind::Positive,
        Fallback::Value("5"),
        API,
        "seconds a connection's first request head may take to arrive (else 408)",
    );
    REQUEST_BODY_TIMEOUT_SECS = Variable::new(
        "KILN_REQUEST_BODY_TIMEOUT_SECS",
        Kind::Positive,
        Fallback::Value("60"),
        API,
        "seconds a request's body may take to arrive",
    );
    KEEP_ALIVE_SECS = Variable::new(
        "KILN_KEEP_ALIVE_SECS",
        Kind::Positive,
        Fallback::Value("5"),
        API,
        "seconds after which an idle keep-alive connection is closed",
    );
}

/// How many requests in how long (`100/hour`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// `N/second`, `N/minute` or `N/hour` (also `N/s`, `N/min`, `N/h`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let expected = || format!("expected N/second, N/minute, N/hour or off, got {raw:?}");
        let (count, unit) = raw.trim().split_once('/').ok_or_else(expected)?;
        let count: u32 = count.trim().parse().map_err(|_| expected())?;
        if count == 0 {
            return Err(format!("{raw:?}: the count must be greater than 0 (or say off)"));
        }
        let per = match unit.trim().to_ascii_lowercase().as_str() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(expected()),
        };
        Ok(Self { count, per })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "second",
            60 => "minute",
            _ => "hour",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// The window of the fleet-wide quotas.
pub const QUOTA_WINDOW: Duration = Duration::from_secs(3600);

/// The API's limits: the rate limit, the quotas and the caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitSettings {
    /// Requests per client IP, in this process (`KILN_RATE_LIMIT_PER_IP`, default `100/hour`;
    /// `off`: none). Operator tokens, the back end's signed requests and `/healthz`, `/readyz`
    /// are not counted.
    pub per_ip: Option<Rate>,
    /// Peers whose client-IP header is believed (`KILN_TRUSTED_PROXIES`, CIDRs; default none).
    pub trusted_proxies: Vec<IpNet>,
    /// The header a trusted proxy puts the client's address in (`KILN_CLIENT_IP_HEADER`,
    /// default `X-Forwarded-For`), lower case.
    pub client_ip_header: String,
    /// New projects per user per hour, fleet-wide (`KILN_QUOTA_NEW_PROJECTS_PER_HOUR`,
    /// default 5; `off`: none).
    pub new_projects_per_hour: Option<u32>,
    /// Builds after a project's first, per project per hour, fleet-wide
    /// (`KILN_QUOTA_REBUILDS_PER_HOUR`, default 20; `off`: none).
    pub rebuilds_per_hour: Option<u32>,
    /// Event and log streams open at once per client IP, in this process
    /// (`KILN_MAX_STREAMS_PER_CLIENT`, default 8; `off`: none).
    pub max_streams_per_client: Option<u32>,
    /// The request line and headers together (`KILN_MAX_HEADER_KB`, default 16).
    pub max_header_bytes: usize,
    /// A connection's first request head must arrive within this (`KILN_REQUEST_HEAD_TIMEOUT_SECS`,
    /// default 5), else 408 and the connection is closed.
    pub head_timeout: Duration,
    /// A request's body must arrive within this (`KILN_REQUEST_BODY_TIMEOUT_SECS`, default 60).
    pub body_timeout: Duration,
    /// An idle keep-alive connection is closed after this (`KILN_KEEP_ALIVE_SECS`, default 5).
    pub keep_alive: Duration,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            per_ip: Some(Rate {
                count: 100,
                per: Duration::from_secs(3600),
            }),
            trusted_proxies: Vec::new(),
            client_ip_header: "x-forwarded-for".into(),
            new_projects_per_hour: Some(5),
            rebuilds_per_hour: Some(20),
            max_streams_per_client: Some(8),
            max_header_bytes: 16 * 1024,
            head_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(60),
            keep_alive: Duration::from_secs(5),
        }
    }
}

impl LimitSettings {
    /// Whether `peer` is one of the trusted proxies.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }

    pub(super) fn load(src: &Source) -> Result<Self, ConfigError> {
        let off = |var: &Variable| src.get(var).is_some_and(|v| v.trim().eq_ignore_ascii_case("off"));
        let count = |var: &Variable| -> Result<Option<u32>, ConfigError> {
            if off(var) {
                return Ok(None);
            }
            let n = src.positive(var)?;
            u32::try_from(n).map(Some).map_err(|_| ConfigError::Invalid {
                var: var.name,
                reason: format!("at most {}", u32::MAX),
            })
        };
        let per_ip = match src.value(&RATE_LIMIT_PER_IP) {
            _ if off(&RATE_LIMIT_PER_IP) => None,
            None => None,
            Some(raw) => Some(Rate::parse(&raw).map_err(|reason| ConfigError::Invalid {
                var: RATE_LIMIT_PER_IP.name,
                reason,
            })?),
        };
        let trusted_proxies = src
            .get(&TRUSTED_PROXIES)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(parse_cidr)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|reason| ConfigError::Invalid {
                var: TRUSTED_PROXIES.name,
                reason,
            })?
            .unwrap_or_default();
        let client_ip_header = src.required(&CLIENT_IP_HEADER)?.trim().to_ascii_lowercase();
        if client_ip_header.is_empty()
            || !client_ip_header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError::Invalid {
                var: CLIENT_IP_HEADER.name,
                reason: format!("expected a header name such as X-Forwarded-For, got {client_ip_header:?}"),
            });
        }
        let secs =
            |var: &Variable| -> Result<Duration, ConfigError> { Ok(Duration::from_secs(src.positive(var)?)) };
        Ok(Self {
            per_ip,
            trusted_proxies,
            client_ip_header,
            new_projects_per_hour: count(&QUOTA_NEW_PROJECTS_PER_HOUR)?,
            rebuilds_per_hour: count(&QUOTA_REBUILDS_PER_HOUR)?,
            max_streams_per_client: count(&MAX_STREAMS_PER_CLIENT)?,
            max_header_bytes: (src.positive(&MAX_HEADER_KB)?.min(64) * 1024) as usize,
            head_timeout: secs(&REQUEST_HEAD_TIMEOUT_SECS)?,
            body_timeout: secs(&REQUEST_BODY_TIMEOUT_SECS)?,
            keep_alive: secs(&KEEP_ALIVE_SECS)?,
        })
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`, or one address (`192.0.2.7`: a /32).
fn parse_cidr(raw: &str) -> Result<IpNet, String> {
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| format!("expected CIDRs such as 10.0.0.0/8 or 192.0.2.7, got {raw:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn load(extra: &[(&str, &str)]) -> Result<LimitSettings, ConfigError> {
        let mut vars = vec![
            ("KILN_DATABASE_URL".to_owned(), "postgres://x".to_owned()),
            ("KILN_ARTIFACTS".to_owned(), "file:///tmp/a".to_owned()),
        ];
        vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Settings::from_vars(vars).map(|s| s.limits)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let l = load(&[]).unwrap();
        assert_eq!(l, LimitSettings::default());
        assert_eq!(l.per_ip.unwrap().to_string(), "100/hour");
        assert_eq!(l.new_projects_per_hour, Some(5));
        assert_eq!(l.rebuilds_per_hour, Some(20));
        assert_eq!(l.max_streams_per_client, Some(8));
        assert!(l.trusted_proxies.is_empty());
    }

    #[test]
    fn rates_quotas_and_proxies_parse_or_are_named() {
        let l = load(&[
            ("KILN_RATE_LIMIT_PER_IP", "30/minute"),
            ("KILN_QUOTA_NEW_PROJECTS_PER_HOUR", "off"),
            ("KILN_QUOTA_REBUILDS_PER_HOUR", "7"),
            ("KILN_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7 ,2001:db8::/32"),
            ("KILN_CLIENT_IP_HEADER", "CF-Connecting-IP"),
            ("KILN_MAX_STREAMS_PER_CLIENT", "off"),
        ])
        .unwrap();
        assert_eq!(
            l.per_ip,
            Some(Rate {
                count: 30,
                per: Duration::from_secs(60)
            })
        );
        assert_eq!(l.new_projects_per_hour, None);
        assert_eq!(l.rebuilds_per_hour, Some(7));
        assert_eq!(l.max_streams_per_client, None);
        assert_eq!(l.client_ip_header, "cf-connecting-ip");
        assert!(l.trusts("10.1.2.3".parse().unwrap()));
        assert!(l.trusts("192.0.2.7".parse().unwrap()));
        assert!(!l.trusts("192.0.2.8".parse().unwrap()));
        assert!(l.trusts("2001:db8::1".parse().unwrap()));
        assert_eq!(load(&[("KILN_RATE_LIMIT_PER_IP", "off")]).unwrap().per_ip, None);

        let err = load(&[("KILN_RATE_LIMIT_PER_IP", "100 per hour")]).unwrap_err();
        assert!(
            err.to_string().starts_with("KILN_RATE_LIMIT_PER_IP is invalid"),
            "{err}"
        );
        let err = load(&[("KILN_RATE_LIMIT_PER_IP", "0/hour")]).unwrap_err();
        assert!(err.to_string().contains("greater than 0"), "{err}");
        let err = load(&[("KILN_TRUSTED_PROXIES", "10.0.0.0/33")]).unwrap_err();
        assert!(
            err.to_string().starts_with("KILN_TRUSTED_PROXIES is invalid"),
            "{err}"
        );
        let err = load(&[("KILN_QUOTA_REBUILDS_PER_HOUR", "0")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "KILN_QUOTA_REBUILDS_PER_HOUR is invalid: must be greater than 0"
        );
        let err = load(&[("KILN_CLIENT_IP_HEADER", "X Forwarded")]).unwrap_err();
        assert!(
            err.to_string().starts_with("KILN_CLIENT_IP_HEADER is invalid"),
            "{err}"
        );
    }
}
