//! Projects' secret environment values at rest: encrypted with XChaCha20-Poly1305 (RustCrypto's
//! `chacha20poly1305`, an AEAD whose 24-byte random nonces never need a counter) under a
//! [`Keyring`] of named keys. The first key encrypts; every key decrypts, so keys rotate
//! without downtime (add the new key first, re-encrypt, then drop the old one). Each
//! ciphertext is bound to its project and name (the associated data): one project's
//! ciphertext copied into another's row does not decrypt.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::config::EncryptionSettings;

const NONCE_BYTES: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("no key for projects' secrets is configured (set KILN_SECRETS_KEY or KILN_SECRETS_KEYS)")]
    NoKey,
    #[error("key {0:?} of KILN_SECRETS_KEYS is not `id:base64-key`")]
    Malformed(String),
    #[error("key id {0:?} must be 1-32 of a-z, 0-9, '-' and '_'")]
    BadId(String),
    #[error("key {0} is not base64 of 32 bytes")]
    BadKey(String),
    #[error("key id {0} is given twice")]
    Duplicate(String),
    #[error("the secret was encrypted with key {0}, which this process does not have (KILN_SECRETS_KEYS)")]
    UnknownKey(String),
    #[error("the secret does not decrypt with key {0}: the key is wrong or the value was altered")]
    Undecryptable(String),
}

/// One named key.
struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The configured keys, newest first.
pub struct Keyring {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keyring").field("ids", &ids).finish()
    }
}

/// A secret as stored: the key that encrypted it and `nonce || ciphertext`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

impl Keyring {
    /// The keyring of these settings (`None` when no key is configured).
    pub fn from_settings(settings: &EncryptionSettings) -> Result<Option<Self>, SecretsError> {
        settings
            .keys
            .as_ref()
            .map(|raw| Self::parse(raw.expose_secret()))
            .transpose()
    }

    /// `id:base64-key,...`, newest first.
    pub fn parse(raw: &str) -> Result<Self, SecretsError> {
        let mut keys: Vec<Key> = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (id, key) = item
                .split_once(':')
                .ok_or_else(|| SecretsError::Malformed(item.chars().take(8).collect::<String>() + "…"))?;
            let id = id.trim();
            if id.is_empty()
                || id.len() > 32
                || !id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            {
                return Err(SecretsError::BadId(id.chars().take(40).collect()));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(key.trim())
                .map_err(|_| SecretsError::BadKey(id.to_owned()))?;
            if bytes.len() != 32 {
                return Err(SecretsError::BadKey(id.to_owned()));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(SecretsError::Duplicate(id.to_owned()));
            }
            let cipher =
                XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| SecretsError::BadKey(id.to_owned()))?;
            keys.push(Key {
                id: id.to_owned(),
                cipher,
            });
        }
        if keys.is_empty() {
            return Err(SecretsError::NoKey);
        }
        Ok(Self { keys })
    }

    /// The id of the key that encrypts.
    pub fn current(&self) -> &str {
        &self.keys[0].id
    }

    /// Encrypts `value`, bound to `context` (the project and the name).
    pub fn seal(&self, context: &str, value: &str) -> Sealed {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend(ciphertext);
        Sealed {
            key_id: key.id.clone(),
            bytes,
        }
    }

    /// Decrypts a sealed value bound to `context`.
    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<String, SecretsError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| SecretsError::UnknownKey(sealed.key_id.clone()))?;
        let undecryptable = || SecretsError::Undecryptable(sealed.key_id.clone());
        if sealed.bytes.len() < NONCE_BYTES {
            return Err(undecryptable());
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_BYTES);
        let plain = key
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| undecryptable())?;
        String::from_utf8(plain).map_err(|_| undecryptable())
    }
}

/// What a secret is bound to: its project and its name.
pub fn context(user: &str, project: &str, name: &str) -> String {
    format!("kiln-env/v1/{user}/{project}/{name}")
}

/// The keyed hash of an environment value recorded on versions (hex of HMAC-SHA256 under the
/// project's own key, over the name and the value).
pub fn value_hash(project_key: &[u8], name: &str, value: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(project_key).expect("HMAC takes a key of any length");
    mac.update(name.as_bytes());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// 32 random bytes: a project's hash key, a share-link key.
pub fn random_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    }

    #[test]
    fn seals_open_with_any_key_of_the_ring_and_only_in_their_context() {
        let old = Keyring::parse(&format!("k1:{}", key(1))).unwrap();
        let sealed = old.seal("kiln-env/v1/u/p/TOKEN", "hunter2-secret");
        assert_eq!(sealed.key_id, "k1");
        assert!(!sealed.bytes.windows(6).any(|w| w == b"hunter"));
        let rotated = Keyring::parse(&format!("k2:{}, k1:{}", key(2), key(1))).unwrap();
        assert_eq!(rotated.current(), "k2");
        assert_eq!(
            rotated.open("kiln-env/v1/u/p/TOKEN", &sealed).unwrap(),
            "hunter2-secret"
        );
        assert_eq!(rotated.seal("c", "v").key_id, "k2");
        // Bound to its project and name.
        assert!(matches!(
            rotated.open("kiln-env/v1/u/other/TOKEN", &sealed),
            Err(SecretsError::Undecryptable(_))
        ));
        let mut altered = sealed.clone();
        *altered.bytes.last_mut().unwrap() ^= 1;
        assert!(rotated.open("kiln-env/v1/u/p/TOKEN", &altered).is_err());
        let only_new = Keyring::parse(&format!("k2:{}", key(2))).unwrap();
        assert!(matches!(
            only_new.open("kiln-env/v1/u/p/TOKEN", &sealed),
            Err(SecretsError::UnknownKey(id)) if id == "k1"
        ));
    }

    #[test]
    fn bad_keyrings_are_refused_by_name() {
        for (raw, says) in [
            ("", "no key"),
            ("nocolon", "is not `id:base64-key`"),
            ("K1:abc", "key id"),
            ("k1:not-base64!", "not base64 of 32 bytes"),
            (
                &format!(
                    "k1:{}",
                    base64::engine::general_purpose::STANDARD.encode([0u8; 16])
                ),
                "not base64 of 32",
            ),
            (&format!("k1:{},k1:{}", key(1), key(2)), "given twice"),
        ] {
            let e = Keyring::parse(raw).unwrap_err().to_string();
            assert!(e.contains(says), "{raw}: {e}");
        }
    }

    #[test]
    fn hashes_are_keyed_and_name_bound() {
        let a = value_hash(&[1; 32], "A", "v");
        assert_eq!(a, value_hash(&[1; 32], "A", "v"));
        assert_ne!(a, value_hash(&[2; 32], "A", "v"));
        assert_ne!(a, value_hash(&[1; 32], "B", "v"));
        assert_eq!(a.len(), 64);
    }
}
