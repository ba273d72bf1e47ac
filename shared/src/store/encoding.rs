//! How a blob's bytes are kept at rest: as they are, or gzip-compressed.
//!
//! A blob is still named by the SHA-256 of its content; a compressed one is stored under that
//! name plus `.gz` (`blobs/sha256/<hash>.gz`), and the manifest entry says which (a manifest
//! written before compression existed names plain blobs only). Gzip, not a stronger codec,
//! because every HTTP client accepts it: the preview server sends the stored bytes as they are
//! with `Content-Encoding: gzip`, and decompresses only for the rare client that does not.

use std::io::{Read, Write};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A blob's encoding at rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Identity,
    Gzip,
}

/// Content smaller than this is kept as it is (gzip's own 18 bytes of framing eat the gain).
const MIN_COMPRESS: usize = 256;
/// Compressed bytes are kept only when they save at least a tenth.
const KEEP_IF_AT_MOST: f64 = 0.9;
/// Content larger than this is compressed on a blocking thread.
const INLINE_WORK: usize = 64 * 1024;
/// zlib's level 6, as `zip` and `gzip` use by default: most of level 9's gain at a third of
/// its time, and the same output on every builder of one release (deduplication relies on it).
const LEVEL: u32 = 6;

impl Encoding {
    /// What a stored object's name adds to the hash.
    pub fn suffix(self) -> &'static str {
        match self {
            Encoding::Identity => "",
            Encoding::Gzip => ".gz",
        }
    }

    pub fn is_identity(&self) -> bool {
        *self == Encoding::Identity
    }

    /// The hash and encoding an object's name (the part after its place's prefix) holds.
    pub fn split_name(name: &str) -> (&str, Encoding) {
        match name.strip_suffix(".gz") {
            Some(hash) => (hash, Encoding::Gzip),
            None => (name, Encoding::Identity),
        }
    }

    /// The value of a `Content-Encoding` header for this encoding.
    pub fn http_name(self) -> Option<&'static str> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some("gzip"),
        }
    }
}

/// Content whose first bytes say it is compressed already (images, fonts, archives, media):
/// compressing it again costs time and saves nothing.
fn looks_compressed(body: &[u8]) -> bool {
    const MAGIC: &[&[u8]] = &[
        b"\x89PNG",
        b"\xff\xd8\xff",
        b"GIF8",
        b"\x1f\x8b",
        b"PK\x03\x04",
        b"wOF2",
        b"wOFF",
        b"\x28\xb5\x2f\xfd",
        b"BZh",
        b"\xfd7zXZ",
        b"OggS",
        b"ID3",
    ];
    let media = |tag: &[u8]| body.len() >= 12 && &body[8..12] == tag;
    MAGIC.iter().any(|m| body.starts_with(m))
        || (body.starts_with(b"RIFF") && (media(b"WEBP") || media(b"WAVE") || media(b"AVI ")))
        || (body.len() >= 12 && &body[4..8] == b"ftyp")
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut out = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 3),
        flate2::Compression::new(LEVEL),
    );
    out.write_all(body).expect("writing to memory cannot fail");
    out.finish().expect("writing to memory cannot fail")
}

/// The bytes to store for `body`, and how they are encoded: gzip when it saves at least a
/// tenth, else the body itself.
pub async fn encode(body: Bytes) -> (Encoding, Bytes) {
    if body.len() < MIN_COMPRESS || looks_compressed(&body) {
        return (Encoding::Identity, body);
    }
    let compressed = if body.len() > INLINE_WORK {
        let b = body.clone();
        match tokio::task::spawn_blocking(move || gzip(&b)).await {
            Ok(c) => c,
            Err(_) => return (Encoding::Identity, body),
        }
    } else {
        gzip(&body)
    };
    if (compressed.len() as f64) <= body.len() as f64 * KEEP_IF_AT_MOST {
        (Encoding::Gzip, Bytes::from(compressed))
    } else {
        (Encoding::Identity, body)
    }
}

/// Why stored bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a valid gzip stream: {0}")]
    Invalid(std::io::Error),
    #[error("decodes to more than the {expected} bytes its manifest says")]
    TooLong { expected: u64 },
}

fn gunzip(stored: &[u8], expected: u64) -> Result<Vec<u8>, DecodeError> {
    // A manifest's size bounds the output: a damaged (or hostile) object cannot make a reader
    // inflate without end.
    let cap = usize::try_from(expected).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(cap.min(256 * 1024 * 1024));
    let mut reader = flate2::read::GzDecoder::new(stored).take(expected.saturating_add(1));
    reader.read_to_end(&mut out).map_err(DecodeError::Invalid)?;
    if out.len() as u64 > expected {
        return Err(DecodeError::TooLong { expected });
    }
    Ok(out)
}

/// [`decode`] on the calling thread (for code that is not async).
pub fn decode_blocking(encoding: Encoding, stored: Vec<u8>, expected: u64) -> Result<Vec<u8>, DecodeError> {
    match encoding {
        Encoding::Identity => Ok(stored),
        Encoding::Gzip => gunzip(&stored, expected),
    }
}

/// The content of stored bytes, which decode to at most `expected` bytes.
pub async fn decode(encoding: Encoding, stored: Bytes, expected: u64) -> Result<Bytes, DecodeError> {
    match encoding {
        Encoding::Identity => Ok(stored),
        Encoding::Gzip if stored.len() > INLINE_WORK => {
            tokio::task::spawn_blocking(move || gunzip(&stored, expected))
                .await
                .map_err(|e| DecodeError::Invalid(std::io::Error::other(e.to_string())))?
                .map(Bytes::from)
        }
        Encoding::Gzip => gunzip(&stored, expected).map(Bytes::from),
    }
}

/// Whether an `Accept-Encoding` header value admits gzip (`gzip`, `x-gzip` or `*`, with a
/// non-zero `q`; an explicit `gzip;q=0` refuses it even when `*` would admit it).
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    let mut star = false;
    for part in accept_encoding.split(',') {
        let mut fields = part.split(';');
        let name = fields.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = fields
            .filter_map(|f| f.trim().strip_prefix("q="))
            .next()
            .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
        match name.as_str() {
            "gzip" | "x-gzip" => return q > 0.0,
            "*" => star = q > 0.0,
            _ => {}
        }
    }
    star
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn text_is_compressed_and_comes_back_whole() {
        let js = "export function f(x) { return x * 2 }\n".repeat(5000);
        let (enc, stored) = encode(Bytes::from(js.clone())).await;
        assert_eq!(enc, Encoding::Gzip);
        assert!(stored.len() < js.len() / 10);
        let back = decode(enc, stored.clone(), js.len() as u64).await.unwrap();
        assert_eq!(back, js.as_bytes());
        // Deterministic: the same content gives the same stored bytes (one object, deduplicated).
        assert_eq!(encode(Bytes::from(js.clone())).await.1, stored);
        // A manifest that says fewer bytes than the stream holds: refused, not inflated.
        assert!(matches!(
            decode(enc, stored, 100).await,
            Err(DecodeError::TooLong { expected: 100 })
        ));
    }

    #[tokio::test]
    async fn small_compressed_or_incompressible_content_stays_as_it_is() {
        for body in [
            b"tiny".to_vec(),
            [b"\x89PNG\r\n\x1a\n".as_slice(), &[0u8; 4096]].concat(),
            (0..4096).map(|_| rand::random::<u8>()).collect(),
        ] {
            let (enc, stored) = encode(Bytes::from(body.clone())).await;
            assert_eq!(enc, Encoding::Identity);
            assert_eq!(stored, body);
        }
        assert!(decode(Encoding::Gzip, Bytes::from_static(b"not gzip"), 10)
            .await
            .is_err());
    }

    #[test]
    fn names_and_accept_encoding() {
        assert_eq!(Encoding::split_name("ab12.gz"), ("ab12", Encoding::Gzip));
        assert_eq!(Encoding::split_name("ab12"), ("ab12", Encoding::Identity));
        for yes in ["gzip", "gzip, deflate, br", "br;q=1.0, GZIP;q=0.5", "*", "x-gzip"] {
            assert!(accepts_gzip(yes), "{yes}");
        }
        for no in ["", "identity", "br", "gzip;q=0", "*, gzip;q=0", "deflate, *;q=0"] {
            assert!(!accepts_gzip(no), "{no}");
        }
    }
}
