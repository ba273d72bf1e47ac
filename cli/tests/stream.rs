//! `kiln logs --follow` against a real HTTP server that sends a log line's characters split
//! across network writes: each comes out whole (a parser that decoded each chunk on its own
//! printed U+FFFD in their place).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves one event stream, written in these pieces with a pause between them.
async fn split_stream(pieces: Vec<&'static [u8]>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        socket.set_nodelay(true).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut byte).await.unwrap();
            assert!(n > 0, "the request ended early");
            head.extend_from_slice(&byte[..n]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("GET /v1/builds/b1/logs?follow=true "), "{head}");
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        for piece in pieces {
            socket.write_all(piece).await.unwrap();
            socket.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    url
}

#[tokio::test]
async fn a_character_split_across_chunks_is_printed_whole() {
    // "café ☕": é is C3 A9, ☕ is E2 98 95; both are cut between writes.
    let url = split_stream(vec![
        b": hello\n\nid: 1\nevent: line\ndata: caf\xc3",
        b"\xa9 \xe2",
        b"\x98",
        b"\x95\n\n",
        b"event: end\ndata: {\"lastLine\":1}\n\n",
    ])
    .await;
    let out = tokio::task::spawn_blocking(move || {
        assert_cmd::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .env_clear()
            .env("KILN_URL", url)
            .env("KILN_TOKEN", "t")
            .args(["logs", "b1", "--follow"])
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "café ☕\n");
}
