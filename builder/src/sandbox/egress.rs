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
//! Everything else gets a `403` that says what is allowed, and one line in the build log per
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

/// The bridge, run by `node` inside the sandbox.
pub const BRIDGE_JS: &str = include_str!("egress-bridge.js");
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
}

impl EgressProxy {
    /// Listens on `path` (a socket the build user may connect to) for one command's
    /// connections.
    pub fn start(
        path: &Path,
        owner: Option<(u32, u32)>,
        allowed: Arc<Vec<AllowedHost>>,
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
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((conn, _)) => {
                            let allowed = allowed.clone();
                            let log = log.clone();
                            let refused = refused.clone();
                            connections.spawn(async move {
                                if let Err(e) = serve(conn, &allowed, &log, &refused).await {
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
        })
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        // Aborting the task drops its JoinSet, which aborts every connection.
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What a client asked for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// `CONNECT host:port`.
    Tunnel { host: String, port: u16 },
    /// An absolute-form request to a plain-HTTP origin: the head to send it instead.
    Forward { host: String, port: u16, head: Vec<u8> },
}

async fn serve(
    mut client: UnixStream,
    allowed: &[AllowedHost],
    log: &ProxyLog,
    refused: &Mutex<HashSet<String>>,
) -> std::io::Result<()> {
    let (head, rest) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client)).await {
        Ok(Ok(Some(read))) => read,
        Ok(Ok(None)) => return answer(&mut client, "400 Bad Request", "not an HTTP proxy request").await,
        Ok(Err(e)) => return Err(e),
        Err(_) => return answer(&mut client, "408 Request Timeout", "no request head in time").await,
    };
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
        }
        Request::Forward { head, .. } => upstream.write_all(&head).await?,
    }
    if !rest.is_empty() {
        upstream.write_all(&rest).await?;
    }
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
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

fn parse(head: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(head).map_err(|_| "the request head is not UTF-8".to_owned())?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("not a request line: {first:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported version {version:?}"));
    }
    if method == "CONNECT" {
        let (host, port) = split_authority(target, None)?;
        return Ok(Request::Tunnel { host, port });
    }
    let Some(rest) = target.strip_prefix("http://") else {
        return Err(format!(
            "{method} {target}: a proxy takes CONNECT host:port or an absolute http:// URL"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let (host, port) = split_authority(authority, Some(80))?;
    let mut out = format!("{method} {path} {version}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or_default().trim();
        let hop_by_hop = [
            "connection",
            "proxy-connection",
            "keep-alive",
            "proxy-authorization",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h));
        if !hop_by_hop {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    Ok(Request::Forward {
        host,
        port,
        head: out.into_bytes(),
    })
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
}
