//! Share-link tokens: stateless, signed with HMAC-SHA256 (RustCrypto's `hmac`) under the
//! project's share-link key. A token names its user, project, optional version and expiry, so
//! it opens only that project's previews (only that version's host when it names one) until it
//! expires, or until the project's key is replaced (revoking every token at once).
//!
//! Form: `base64url(user "\n" project "\n" version-or-empty "\n" expiry-unix-secs) "."
//! base64url(mac)`, the MAC taken over the first part as sent; compared in constant time
//! (`verify_slice`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use hmac::{Hmac, Mac};
use kiln_shared::domain::{ProjectId, UserId, VersionId};
use sha2::Sha256;

/// The query parameter a share link carries its token in, and the name of its cookie.
pub const PARAM: &str = "kiln_share";

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub user: UserId,
    pub project: ProjectId,
    /// Only this version's host, when set.
    pub version: Option<VersionId>,
    pub expires_at: DateTime<Utc>,
}

/// Why a token opens nothing (the preview answers 401 whichever it is; the reason is logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the token is not a share token")]
    Malformed,
    #[error("the token's signature does not hold (tampered, or signed with a revoked key)")]
    Signature,
    #[error("the token is for another project")]
    OtherProject,
    #[error("the token is for another version")]
    OtherVersion,
    #[error("the token has expired")]
    Expired,
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length")
}

impl Share {
    /// The token of this share, signed with `key`.
    pub fn sign(&self, key: &[u8]) -> String {
        let payload = format!(
            "{}\n{}\n{}\n{}",
            self.user,
            self.project,
            self.version.map(|v| v.to_string()).unwrap_or_default(),
            self.expires_at.timestamp()
        );
        let payload = URL_SAFE_NO_PAD.encode(payload);
        let mut m = mac(key);
        m.update(payload.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
        format!("{payload}.{tag}")
    }

    /// The share a token signed with `key` grants, when it opens `version`'s preview of `user`'s
    /// `project` at `now` (a version's own host: `on_version_host`).
    pub fn verify(
        token: &str,
        key: &[u8],
        user: &UserId,
        project: &ProjectId,
        version: VersionId,
        on_version_host: bool,
        now: DateTime<Utc>,
    ) -> Result<Share, Refused> {
        let (payload, tag) = token.split_once('.').ok_or(Refused::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Refused::Malformed)?;
        let mut m = mac(key);
        m.update(payload.as_bytes());
        m.verify_slice(&tag).map_err(|_| Refused::Signature)?;
        let share = Self::parse(payload).ok_or(Refused::Malformed)?;
        if &share.user != user || &share.project != project {
            return Err(Refused::OtherProject);
        }
        if let Some(only) = share.version {
            if !on_version_host || only != version {
                return Err(Refused::OtherVersion);
            }
        }
        if share.expires_at <= now {
            return Err(Refused::Expired);
        }
        Ok(share)
    }

    fn parse(payload: &str) -> Option<Share> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let mut parts = text.split('\n');
        let (user, project, version, expiry) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        Some(Share {
            user: UserId::parse(user).ok()?,
            project: ProjectId::parse(project).ok()?,
            version: match version {
                "" => None,
                v => Some(VersionId::parse(v).ok()?),
            },
            expires_at: Utc.timestamp_opt(expiry.parse().ok()?, 0).single()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(version: Option<VersionId>, secs: i64) -> Share {
        Share {
            user: UserId::parse("u_1").unwrap(),
            project: ProjectId::parse("site").unwrap(),
            version,
            expires_at: Utc.timestamp_opt(Utc::now().timestamp() + secs, 0).unwrap(),
        }
    }

    #[test]
    fn a_token_opens_its_project_until_it_expires() {
        let key = [7u8; 32];
        let v = VersionId::new();
        let s = share(None, 60);
        let token = s.sign(&key);
        assert!(token.len() < 120, "{token}");
        let check = |token: &str, key: &[u8], project: &str, version: VersionId, on_host: bool| {
            Share::verify(
                token,
                key,
                &s.user,
                &ProjectId::parse(project).unwrap(),
                version,
                on_host,
                Utc::now(),
            )
        };
        assert_eq!(check(&token, &key, "site", v, false), Ok(s.clone()));
        assert_eq!(check(&token, &key, "site", v, true), Ok(s.clone()));
        assert_eq!(check(&token, &key, "other", v, false), Err(Refused::OtherProject));
        assert_eq!(
            check(&token, &[8u8; 32], "site", v, false),
            Err(Refused::Signature)
        );
        assert_eq!(check("nonsense", &key, "site", v, false), Err(Refused::Malformed));
        // Any change of the payload breaks the signature.
        let (payload, tag) = token.split_once('.').unwrap();
        let forged = share(None, 600).sign(&[0u8; 32]);
        let forged_payload = forged.split_once('.').unwrap().0;
        assert_ne!(forged_payload, payload);
        assert_eq!(
            check(&format!("{forged_payload}.{tag}"), &key, "site", v, false),
            Err(Refused::Signature)
        );

        let expired = share(None, -1).sign(&key);
        assert_eq!(check(&expired, &key, "site", v, false), Err(Refused::Expired));

        let scoped = share(Some(v), 60).sign(&key);
        assert!(check(&scoped, &key, "site", v, true).is_ok());
        assert_eq!(check(&scoped, &key, "site", v, false), Err(Refused::OtherVersion));
        assert_eq!(
            check(&scoped, &key, "site", VersionId::new(), true),
            Err(Refused::OtherVersion)
        );
    }
}
