//! The secret values of the settings, for redaction.

use super::Settings;

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
                    if let Ok(decoded) = percent_encoding::percent_decode_str(password).decode_utf8() {
                        out.push(decoded.into_owned());
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
        if let Some(keys) = &self.encryption.keys {
            let keys = keys.expose_secret();
            out.push(keys.to_owned());
            out.extend(
                keys.split(',')
                    .filter_map(|k| k.split_once(':'))
                    .map(|(_, key)| key.trim().to_owned()),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_is_listed_and_a_url_password_both_encoded_and_decoded() {
        let vars = [
            ("KILN_DATABASE_URL", "postgres://kiln:p%40ss%2Fw0rd@db:5432/kiln"),
            ("KILN_REDIS_URL", "redis://:r3d1s@cache:6379"),
            ("KILN_ARTIFACTS", "s3://bucket"),
            ("KILN_HMAC_SECRET", "hmac-secret"),
            ("KILN_API_TOKENS", "tok-a, tok-b"),
            ("AWS_ACCESS_KEY_ID", "GKaccess"),
            ("AWS_SECRET_ACCESS_KEY", "s3-secret"),
        ];
        let settings = Settings::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        let values = settings.secret_values();
        for expected in [
            "p%40ss%2Fw0rd",
            "p@ss/w0rd",
            "postgres://kiln:p%40ss%2Fw0rd@db:5432/kiln",
            "r3d1s",
            "redis://:r3d1s@cache:6379",
            "hmac-secret",
            "tok-a",
            "tok-b",
            "GKaccess",
            "s3-secret",
        ] {
            assert!(
                values.iter().any(|v| v == expected),
                "{expected} missing from {values:?}"
            );
        }
    }
}
