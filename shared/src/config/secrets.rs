//! The secret values of the settings, for redaction.

use super::Settings;

/// `%xx` decoding of a URL component.
fn urlencoding_decode(raw: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
}

impl Settings {
    /// Every secret value these settings hold (and the passwords inside the URLs), for
    /// redaction: none of them may ever reach a build log.
    pub fn secret_values(&self) -> Vec<String> {
        use secrecy::ExposeSecret;
        let mut out = Vec::new();
        for url in [&self.database.url, &self.redis.url] {
            let raw = url.expose_secret().to_owned();
            if let Ok(parsed) = url::Url::parse(&raw) {
                if let Some(password) = parsed.password() {
                    out.push(password.to_owned());
                    if let Ok(decoded) = urlencoding_decode(password) {
                        out.push(decoded);
                    }
                }
            }
            out.push(raw);
        }
        out.extend(self.api.hmac_secret.iter().map(|s| s.expose_secret().to_owned()));
        out.extend(self.api.tokens.iter().map(|s| s.expose_secret().to_owned()));
        out.extend(
            self.storage
                .s3
                .secret_access_key
                .iter()
                .map(|s| s.expose_secret().to_owned()),
        );
        out.extend(self.storage.s3.access_key_id.iter().cloned());
        out
    }
}
