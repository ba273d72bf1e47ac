//! Integrity hashes: what the registry's metadata says a tarball hashes to (Subresource
//! Integrity, `sha512-<base64>`, or an old package's `shasum`, SHA-1 in hex), and the check of
//! bytes against it. The cache names what it stores by the tarball's own SHA-512 (hex).

use base64::Engine;
use sha2::Digest;

/// What a tarball must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Sha512([u8; 64]),
    /// Only for packages published before npm recorded SHA-512.
    Sha1([u8; 20]),
}

impl Expected {
    /// The strongest hash of a version's `dist` (`integrity`, else `shasum`).
    pub fn of_dist(dist: &serde_json::Value) -> Option<Self> {
        if let Some(sri) = dist.get("integrity").and_then(|v| v.as_str()) {
            if let Some(found) = Self::parse_sri(sri) {
                return Some(found);
            }
        }
        let shasum = dist.get("shasum").and_then(|v| v.as_str())?;
        let mut out = [0u8; 20];
        hex::decode_to_slice(shasum.trim(), &mut out).ok()?;
        Some(Expected::Sha1(out))
    }

    /// The SHA-512 of a Subresource Integrity string (`sha512-<base64>`, among others
    /// separated by spaces); `None` when it has none.
    pub fn parse_sri(sri: &str) -> Option<Self> {
        sri.split_whitespace().find_map(|item| {
            let b64 = item.strip_prefix("sha512-")?;
            let b64 = b64.split('?').next().unwrap_or(b64);
            let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            <[u8; 64]>::try_from(raw.as_slice()).ok().map(Expected::Sha512)
        })
    }

    /// Whether `body` hashes to this.
    pub fn matches(&self, body: &[u8]) -> bool {
        match self {
            Expected::Sha512(want) => sha512(body) == *want,
            Expected::Sha1(want) => {
                let got: [u8; 20] = sha1::Sha1::digest(body).into();
                got == *want
            }
        }
    }
}

pub fn sha512(body: &[u8]) -> [u8; 64] {
    sha2::Sha512::digest(body).into()
}

/// A tarball's name in the cache: its SHA-512 in hex.
pub fn sha512_hex(body: &[u8]) -> String {
    hex::encode(sha512(body))
}

/// Whether `body` is the object the cache names `hex`.
pub fn is_object(hex_name: &str, body: &[u8]) -> bool {
    sha512_hex(body) == hex_name
}

#[cfg(test)]
mod tests {
    use super::*;

    // `is-number@7.0.0` as the registry describes it.
    const SRI: &str =
        "sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng==";

    #[test]
    fn an_sri_string_gives_its_sha512_and_bytes_are_checked_against_it() {
        let Some(Expected::Sha512(want)) = Expected::parse_sri(&format!("sha1-abc= {SRI}")) else {
            panic!("a sha512");
        };
        assert_eq!(hex::encode(&want[..4]), "e350a27e");
        let body = b"a tarball";
        let own = format!(
            "sha512-{}",
            base64::engine::general_purpose::STANDARD.encode(sha512(body))
        );
        let expected = Expected::parse_sri(&own).unwrap();
        assert!(expected.matches(body));
        assert!(!expected.matches(b"a tarball, changed"));
        assert!(is_object(&sha512_hex(body), body));
        assert!(!is_object(&sha512_hex(body), b"other"));
        for bad in ["", "sha1-abc=", "sha512-not base64!", "sha512-YWJj", "md5-x"] {
            assert_eq!(Expected::parse_sri(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_old_package_is_checked_against_its_shasum() {
        let body = b"old";
        let hex_sha1 = hex::encode(sha1::Sha1::digest(body));
        let dist = serde_json::json!({ "shasum": hex_sha1 });
        let expected = Expected::of_dist(&dist).unwrap();
        assert!(matches!(expected, Expected::Sha1(_)));
        assert!(expected.matches(body));
        assert!(!expected.matches(b"new"));
        let dist = serde_json::json!({ "shasum": hex_sha1, "integrity": SRI });
        assert!(matches!(Expected::of_dist(&dist), Some(Expected::Sha512(_))));
        assert_eq!(Expected::of_dist(&serde_json::json!({})), None);
    }
}
