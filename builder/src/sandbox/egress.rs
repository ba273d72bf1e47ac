//! The egress proxy: what `pnpm install` and the project's install scripts may reach.
//!
//! An install runs in a network namespace with no network at all. Inside, Kiln's bridge
//! (`egress-bridge.js`, run by the build's own `node`) listens on `127.0.0.1:3128` and hands
//! each connection through a Unix socket (short-named, bound in) to this proxy, in the
//! daemon, which speaks just enough HTTP proxying for package managers:
//!
//! - `CONNECT host:port` (HTTPS): a tunnel, when `host:port` is allowed (`KILN_EGRESS_ALLOW`);
//! - `GET http://host:port/path` (a plain-HTTP registry): forwarded with `Connection: close`,
//!   so one client connection never reaches a second host.
//!
//! Requests for the fleet's package cache (`http://packages.kiln.internal/…`, see
//! [`crate::packages`]) are answered by the daemon itself, before and whatever the
//! allow-list. Everything else gets a `403` that says what is allowed, and one line in the build log per
//! refused destination. The proxy resolves names itself: the build has no DNS, so it cannot
//! reach an address by any other name, and IP literals are refused unless listed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kiln_shared::config::AllowedHost;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::task::JoinSet;

use crate::log::BuildLog;
use crate::packages::{PackageCache, Tally};

/// The bridge, run by `node` inside the sandbox.
pub const BRIDGE_JS: &str = include_str!("egress-bridge.js");
/// The bridge as written for builds: pointing pnpm at `registry` (the package cache) when
/// given.
pub fn bridge_js(registry: Option<&str>) -> String {
    match registry {
        Some(url) => BRIDGE_JS.replacen(
            "const REGISTRY = null;",
            &format!("const REGISTRY = {};", serde_json::Value::from(url)),
            1,
        ),
        None => BRIDGE_JS.to_owned(),
    }
}

/// Where the bridge listens inside the build's network namespace.
pub const BRIDGE_PORT: u16 = 3128;

/// The most a request head may be.
const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its request head, and the proxy to connect upstream.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where a proxy writes its lines: the log of the build it serves. A warm sandbox's proxy is
/// started before its build exists, and gets the build's log when the build takes it.
#[derive(Clone, Default)]
pub struct ProxyLog(Arc<OnceLock<BuildLog>>);

impl std::fmt::Debug for ProxyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "ProxyLog(attached)"
        } else {
            "ProxyLog(detached)"
        })
    }
}

impl ProxyLog {
    pub fn of(log: BuildLog) -> Self {
        let me = Self::default();
        me.attach(&log);
        me
    }

    /// The build's log (once; a second log is ignored: one proxy serves one build).
    pub fn attach(&self, log: &BuildLog) {
        let _ = self.0.set(log.clone());
    }

    fn line(&self, line: &str) {
        match self.0.get() {
            Some(log) => log.line(line),
            // Nothing runs behind a proxy before its build takes it; said, should it happen.
            None => tracing::warn!(line, "egress proxy used before a build took it"),
        }
    }
}

/// One proxy for one command: it serves until dropped, then its connections end and its
/// socket is removed.
#[derive(Debug)]
pub struct EgressProxy {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
    log: ProxyLog,
    /// What the package cache served through this proxy.
    tally: Arc<Tally>,
}

impl EgressProxy {
    /// Listens on `path` (a socket the build user may connect to) for one command's
    /// connections.
    pub fn start(
        path: &Path,
        owner: Option<(u32, u32)>,
        allowed: Arc<Vec<AllowedHost>>,
        packages: Option<Arc<PackageCache>>,
        log: ProxyLog,
    ) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let refused = Arc::new(Mutex::new(HashSet::new()));
        let tally = Arc::new(Tally::default());
        let (proxy_log, proxy_tally) = (log.clone(), tally.clone());
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((conn, _)) => {
                            let allowed = allowed.clone();
                            let log = log.clone();
                            let refused = refused.clone();
                            let packages = packages.clone().map(|cache| (cache, tally.clone()));
                            connections.spawn(async move {
                                if let Err(e) = serve(conn, &allowed, packages, &log, &refused).await {
                                    tracing::debug!(error = %e, "egress connection ended");
                                }
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "egress proxy: accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    Some(_) = connections.join_next() => {}
                }
            }
        });
        Ok(Self {
            path: path.to_owned(),
            task,
            log: proxy_log,
            tally: proxy_tally,
        })
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        // Aborting the task drops its JoinSet, which aborts every connection.
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
        if let Some(line) = self.tally.summary() {
            self.log.line(&line);
        }
    }
}

/// What a client asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// `CONNECT host:port`.
    Tunnel { host: String, port: u16 },
    /// An absolute-form request to a plain-HTTP origin: the head to send it instead.
    Forward { host: String, port: u16, head: Vec<u8> },
}

async fn serve(
    mut client: UnixStream,
    allowed: &[AllowedHost],
    packages: Option<(Arc<PackageCache>, Arc<Tally>)>,
    log: &ProxyLog,
    refused: &Mutex<HashSet<String>>,
) -> std::io::Result<()> {
    let (head, rest) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await {
        Ok(Ok(Some(read))) => read,
        Ok(Ok(None)) => return answer(&mut client, "400 Bad Request", "not an HTTP proxy request").await,
        Ok(Err(e)) => return Err(e),
        Err(_) => return answer(&mut client, "408 Request Timeout", "no request head in time").await,
    };
    // The package cache, before the allow-list and whatever it says.
    if let (Some((cache, tally)), Some(ask)) = (&packages, crate::packages::request::parse(&head)) {
        let reply = cache.answer(ask, tally, &|line| log.line(line)).await;
        let head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            reply.status,
            reply.content_type,
            reply.body.len()
        );
        client.write_all(head.as_bytes()).await?;
        client.write_all(&reply.body).await?;
        return client.shutdown().await;
    }
    let request = match parse(&head) {
        Ok(request) => request,
        Err(why) => return answer(&mut client, "400 Bad Request", &why).await,
    };
    let (host, port) = match &request {
        Request::Tunnel { host, port } | Request::Forward { host, port, .. } => (host.as_str(), *port),
    };
    if !allowed.iter().any(|a| a.admits(host, port)) {
        let target = format!("{host}:{port}");
        let list = allowed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let first = refused.lock().expect("not poisoned").insert(target.clone());
        if first {
            log.line(&format!(
                "[kiln] egress refused: {target} (an install may reach {list} only; KILN_EGRESS_ALLOW)"
            ));
        }
        return answer(
            &mut client,
            "403 Forbidden",
            &format!("Kiln's egress proxy: {target} is not allowed during install; allowed: {list}"),
        )
        .await;
    }
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            log.line(&format!("[kiln] egress: cannot reach {host}:{port}: {e}"));
            return answer(
                &mut client,
                "502 Bad Gateway",
                &format!("cannot reach {host}:{port}: {e}"),
            )
            .await;
        }
        Err(_) => {
            log.line(&format!("[kiln] egress: {host}:{port} did not answer in time"));
            return answer(
                &mut client,
                "504 Gateway Timeout",
                &format!("{host}:{port} did not answer"),
            )
            .await;
        }
    };
    let _ = upstream.set_nodelay(true);
    let mut upstream = upstream;
    match request {
        Request::Tunnel { .. } => {
            client
                .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                .await?;
            if !rest.is_empty() {
                upstream.write_all(&rest).await?;
            }
            tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        }
        Request::Forward { head, .. } => {
            // One request, and only its head (it has no body; `Connection: close` ends the
            // exchange): nothing the build sends after it reaches the address, so a second
            // request cannot name another site.
            upstream.write_all(&head).await?;
            tokio::io::copy(&mut upstream, &mut client).await?;
        }
    }
    Ok(())
}

async fn answer(client: &mut UnixStream, status: &str, message: &str) -> std::io::Result<()> {
    let body = format!("{message}\n");
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(response.as_bytes()).await?;
    client.shutdown().await
}

/// Reads up to the end of the request head: `(head, bytes after it)`; `None` when the client
/// closed first or the head is too long.
async fn read_head(client: &mut UnixStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let end = from + at + 4;
            let rest = buf.split_off(end);
            return Ok(Some((buf, rest)));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

/// Headers one request head may carry.
const MAX_HEADERS: usize = 100;

/// Hop-by-hop headers, not forwarded; `Host` is rewritten from the request target.
const NOT_FORWARDED: [&str; 5] = [
    "host",
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
];

/// A request head (parsed by httparse: a request line and headers, nothing else) as what to
/// do. A forwarded request's `Host` is the target's authority, whatever the client sent
/// (RFC 9112 §3.2.2): an allowed address must not serve another site's name through the proxy.
pub(crate) fn parse(head: &[u8]) -> Result<Request, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(httparse::Status::Complete(_)) => return Err("bytes after the request head".into()),
        Ok(httparse::Status::Partial) => return Err("an incomplete request head".into()),
        Err(e) => return Err(format!("a malformed request head: {e}")),
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err("a malformed request line".into());
    };
    if method == "CONNECT" {
        let (host, port) = split_authority(target, None)?;
        return Ok(Request::Tunnel { host, port });
    }
    let Some(rest) = target.strip_prefix("http://") else {
        return Err(format!(
            "{method} {target}: a proxy takes CONNECT host:port or an absolute http:// URL"
        ));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) if rest.as_bytes()[at] == b'/' => rest.split_at(at),
        Some(_) => return Err(format!("{method} {target}: a query needs a path")),
        None => (rest, "/"),
    };
    let (host, port) = split_authority(authority, Some(80))?;
    let has_body = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length") && h.value.iter().any(|b| *b != b'0'))
    });
    if has_body {
        return Err(format!(
            "{method} {target}: a request forwarded to a plain-HTTP address carries no body"
        ));
    }
    let mut out = format!(
        "{method} {path} HTTP/1.{minor}\r\nHost: {}\r\n",
        host_header(&host, port)
    )
    .into_bytes();
    for header in req.headers.iter() {
        if NOT_FORWARDED.iter().any(|h| header.name.eq_ignore_ascii_case(h)) {
            continue;
        }
        out.extend_from_slice(header.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(header.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    Ok(Request::Forward {
        host,
        port,
        head: out,
    })
}

/// The `Host` of a request sent to `host:port`: the name as the proxy resolved it (lower case,
/// an IPv6 address in brackets) and the port unless it is HTTP's own.
pub fn host_header(host: &str, port: u16) -> String {
    let name = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    match port {
        80 => name,
        _ => format!("{name}:{port}"),
    }
}

/// `host:port` (or `host` with a default port) from a request target; `[v6]:port` too.
fn split_authority(authority: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let bad = || format!("not host:port: {authority:?}");
    if authority.contains('@') || authority.is_empty() {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| bad())?,
        None => default_port.ok_or_else(bad)?,
    };
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_and_absolute_requests_are_understood_and_the_rest_refused() {
        assert_eq!(
            parse(b"CONNECT Registry.npmjs.org:443 HTTP/1.1\r\nHost: registry.npmjs.org:443\r\n\r\n"),
            Ok(Request::Tunnel {
                host: "registry.npmjs.org".into(),
                port: 443
            })
        );
        assert_eq!(
            parse(b"CONNECT [::1]:6379 HTTP/1.1\r\n\r\n"),
            Ok(Request::Tunnel {
                host: "::1".into(),
                port: 6379
            })
        );
        let Ok(Request::Forward { host, port, head }) = parse(
            b"GET http://npm.local:4873/is-number HTTP/1.1\r\nHost: npm.local:4873\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n",
        ) else {
            panic!("a forward");
        };
        assert_eq!((host.as_str(), port), ("npm.local", 4873));
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /is-number HTTP/1.1\r\nHost: npm.local:4873\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        for bad in [
            &b"GET /local HTTP/1.1\r\n\r\n"[..],
            b"CONNECT registry.npmjs.org HTTP/1.1\r\n\r\n",
            b"CONNECT user@host:443 HTTP/1.1\r\n\r\n",
            b"GET https://registry.npmjs.org/ HTTP/1.1\r\n\r\n",
            b"CONNECT host:443 SPDY/3\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_forwarded_request_names_the_host_it_is_sent_to_and_nothing_else() {
        // Another site's name on an allowed address (domain fronting): the Host header is the
        // target's authority, however many Host headers the client sent.
        let Ok(Request::Forward { host, head, .. }) = parse(
            b"GET http://npm.local:4873/left-pad HTTP/1.1\r\nHost: evil.example\r\nhost: other.example\r\nProxy-Authorization: Basic eA==\r\nAccept: */*\r\n\r\n",
        ) else {
            panic!("a forward");
        };
        assert_eq!(host, "npm.local");
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /left-pad HTTP/1.1\r\nHost: npm.local:4873\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        let Ok(Request::Forward { head, .. }) = parse(b"GET http://npm.local HTTP/1.0\r\n\r\n") else {
            panic!("a forward");
        };
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET / HTTP/1.0\r\nHost: npm.local\r\nConnection: close\r\n\r\n"
        );
        for bad in [
            // A header folded over two lines, a control character in a value, a space in the
            // target, a query without a path, bytes after the head, a head cut short.
            &b"GET http://npm.local/ HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"[..],
            b"GET http://npm.local/ HTTP/1.1\r\nX-A: a\x01b\r\n\r\n",
            b"GET http://npm.local/a b HTTP/1.1\r\n\r\n",
            b"GET http://npm.local?x=1 HTTP/1.1\r\n\r\n",
            b"GET http://npm.local/ HTTP/1.1\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
            b"GET http://npm.local/ HTTP/1.1\r\nAccept: */*\r\n",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[tokio::test]
    async fn a_build_cannot_make_an_allowed_address_serve_another_site_through_the_proxy() {
        use tokio::net::TcpListener;
        // A plain-HTTP origin on an allowed address that records every request head it gets.
        let origin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = origin.local_addr().unwrap().port();
        let (heads, mut received) = tokio::sync::mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = origin.accept().await.unwrap();
                let heads = heads.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    // Read what arrives for a moment: a pipelined second request would be here.
                    while let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_millis(300), conn.read(&mut buf)).await
                    {
                        if n == 0 {
                            break;
                        }
                        seen.extend_from_slice(&buf[..n]);
                    }
                    let _ = heads.send(String::from_utf8_lossy(&seen).into_owned());
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                        .await;
                });
            }
        });
        let dir = std::env::temp_dir().join(format!("kiln-egress-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("egress.sock");
        let allowed = Arc::new(vec![AllowedHost {
            host: "127.0.0.1".into(),
            port,
        }]);
        let _proxy = EgressProxy::start(&socket, None, allowed, None, ProxyLog::default()).unwrap();

        // Another site's name, twice, and a second request pipelined behind the first.
        let mut client = UnixStream::connect(&socket).await.unwrap();
        let attack = format!(
            "GET http://127.0.0.1:{port}/left-pad HTTP/1.1\r\nHost: metadata.internal\r\nHost: evil.example\r\n\r\n\
             GET /second HTTP/1.1\r\nHost: evil.example\r\n\r\n"
        );
        client.write_all(attack.as_bytes()).await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("ok"),
            "{answer}"
        );
        let head = received.recv().await.unwrap();
        assert_eq!(
            head,
            format!("GET /left-pad HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
            "the origin got another Host or a second request"
        );

        // A request with a body is refused before anything is sent.
        let mut client = UnixStream::connect(&socket).await.unwrap();
        let post = format!("POST http://127.0.0.1:{port}/ HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
        client.write_all(post.as_bytes()).await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400 Bad Request"), "{answer}");
        assert!(
            tokio::time::timeout(Duration::from_millis(500), received.recv())
                .await
                .is_err(),
            "a refused request reached the origin"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
