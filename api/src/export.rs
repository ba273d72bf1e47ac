//! Zip exports of a version's output or sources, streamed: files are read one at a time and the
//! archive leaves in 64 KB chunks through a bounded channel, so memory stays at about one file
//! plus a few chunks whatever the size of the version.

use std::io::{self, Write};

use bytes::Bytes;
use futures::Stream;
use kiln_shared::store::{Artifacts, Manifest};
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

const CHUNK: usize = 64 * 1024;

/// Paths never exported: version control and package-manager stores.
pub fn exported(path: &str) -> bool {
    !path
        .split('/')
        .any(|segment| segment.starts_with(".git") || segment == "node_modules" || segment == ".pnpm-store")
}

/// An `io::Write` that hands full chunks to an async receiver (blocking while it is full).
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

fn compressible(content_type: &str) -> bool {
    !(content_type.starts_with("image/") && !content_type.contains("svg")
        || content_type.starts_with("video/")
        || content_type.starts_with("audio/")
        || content_type.contains("zip")
        || content_type.contains("font/woff"))
}

fn write_zip(
    artifacts: &Artifacts,
    manifest: &Manifest,
    writer: ChannelWriter,
    runtime: &tokio::runtime::Handle,
) -> io::Result<()> {
    let mut zip = zip::ZipWriter::new_stream(writer);
    for (path, entry) in manifest.files.iter().filter(|(p, _)| exported(p)) {
        let body = runtime
            .block_on(artifacts.read(entry))
            .map_err(io::Error::other)?;
        let method = if compressible(&entry.content_type) {
            CompressionMethod::Deflated
        } else {
            CompressionMethod::Stored
        };
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .large_file(entry.size >= u32::MAX as u64);
        zip.start_file(path.as_str(), options).map_err(io::Error::other)?;
        zip.write_all(&body)?;
    }
    let mut writer = zip.finish().map_err(io::Error::other)?.into_inner();
    writer.flush()
}

/// The zip of `manifest`'s files as a stream of chunks; an error ends the stream with an error.
pub fn zip_stream(artifacts: Artifacts, manifest: Manifest) -> impl Stream<Item = io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(4);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let writer = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        if let Err(e) = write_zip(&artifacts, &manifest, writer, &runtime) {
            if e.kind() != io::ErrorKind::BrokenPipe {
                tracing::error!(error = %e, "zip export failed");
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_control_and_stores_are_never_exported() {
        assert!(exported("index.html"));
        assert!(exported("assets/.well-known/x"));
        assert!(!exported(".git/config"));
        assert!(!exported(".gitignore"));
        assert!(!exported("a/node_modules/x.js"));
        assert!(!exported(".pnpm-store/v3/x"));
    }
}
