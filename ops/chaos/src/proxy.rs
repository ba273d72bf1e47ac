//! A TCP proxy between one daemon and Redis that can be cut off: while it is a blackhole it
//! forwards nothing in either direction, but closes nothing either, so the daemon's
//! connections stay open and its commands hang until their timeouts, as in a network partition.
//! Bytes read before or during the blackhole are held and delivered once it heals (as TCP
//! retransmission would deliver them after a partition).

use std::net::SocketAddr;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    /// `true` while traffic flows.
    open: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Proxy {
    /// Listens on a free loopback port and forwards each connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the proxy")?;
        let port = listener.local_addr()?.port();
        let (open, gate) = watch::channel(true);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(connection(client, upstream, gate.clone()));
            }
        });
        Ok(Self { port, open, accept })
    }

    /// Stops forwarding (connections stay open).
    pub fn blackhole(&self) {
        self.open.send_replace(false);
    }

    /// Forwards again, held bytes first.
    pub fn heal(&self) {
        self.open.send_replace(true);
    }
}

/// Waits while the proxy is a blackhole; `false` when the proxy is gone.
async fn wait_open(gate: &mut watch::Receiver<bool>) -> bool {
    gate.wait_for(|open| *open).await.is_ok()
}

async fn connection(client: TcpStream, upstream: SocketAddr, mut gate: watch::Receiver<bool>) {
    // A connection made during a partition gets no further than the proxy until it heals.
    if !wait_open(&mut gate).await {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return; // the client sees its connection close, as when Redis is down
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, gate.clone()),
        pump(server_read, client_write, gate),
    );
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut gate: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !wait_open(&mut gate).await {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Read just as the blackhole began: held until it heals.
        if !wait_open(&mut gate).await {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// An echo server behind the proxy: bytes flow, stop during a blackhole (without the
    /// connection closing), and arrive once it heals.
    #[tokio::test]
    async fn a_blackhole_holds_traffic_without_closing_and_heals() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let proxy = Proxy::start(upstream).await.unwrap();
        let mut conn = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
        let mut buf = [0u8; 5];
        conn.write_all(b"hello").await.unwrap();
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");

        proxy.blackhole();
        conn.write_all(b"again").await.unwrap();
        let held = tokio::time::timeout(Duration::from_millis(300), conn.read_exact(&mut buf)).await;
        assert!(held.is_err(), "nothing may pass a blackhole");

        proxy.heal();
        tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut buf))
            .await
            .expect("held bytes arrive after the heal")
            .unwrap();
        assert_eq!(&buf, b"again");
    }
}
