//! The keys projects' secret environment values are encrypted with.

use secrecy::SecretString;

use super::definition::{section, Fallback, Kind, Variable, ALL};

section! {
    title: "Project secrets",
    intro: "The keys that encrypt projects' secret environment values at rest (XChaCha20-Poly1305). The API encrypts with them, builders decrypt, `kiln-ops reencrypt` moves every secret to the first key.",
    SECRETS_KEYS = Variable::new(
        "KILN_SECRETS_KEYS",
        Kind::Format("comma-separated `id:base64-key`"),
        Fallback::Otherwise("KILN_SECRETS_KEY as key `k1`"),
        ALL,
        "the keys of projects' secrets, newest first: the first encrypts, every one decrypts",
    )
    .secret()
    .details("A key is 32 random bytes in base64 (`openssl rand -base64 32`); an id is 1-32 of `a-z`, `0-9`, `-`, `_`. Without any key, setting a secret is refused and a build of a project with secrets fails.")
    .example("k2:CHANGE-ME-base64-32-bytes,k1:CHANGE-ME-older-key");
    SECRETS_KEY = Variable::new(
        "KILN_SECRETS_KEY",
        Kind::Format("base64 of 32 bytes"),
        Fallback::Otherwise("none"),
        ALL,
        "one key for projects' secrets (id `k1`), when KILN_SECRETS_KEYS is not set",
    )
    .secret();
}

/// The secrets keys as configured, unparsed (parsed by `crate::secrets::Keyring`).
#[derive(Debug, Clone, Default)]
pub struct EncryptionSettings {
    /// `KILN_SECRETS_KEYS`, else `k1:` + `KILN_SECRETS_KEY`.
    pub keys: Option<SecretString>,
}

impl EncryptionSettings {
    pub(super) fn load(src: &super::source::Source) -> Result<Self, super::source::ConfigError> {
        let keys = match (src.get(&SECRETS_KEYS), src.get(&SECRETS_KEY)) {
            (Some(keys), _) => Some(keys),
            (None, Some(key)) => Some(format!("k1:{}", key.trim())),
            (None, None) => None,
        };
        let settings = Self {
            keys: keys.map(SecretString::from),
        };
        if let Err(e) = crate::secrets::Keyring::from_settings(&settings) {
            return Err(super::source::ConfigError::Invalid {
                var: SECRETS_KEYS.name,
                reason: e.to_string(),
            });
        }
        Ok(settings)
    }
}
