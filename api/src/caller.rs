//! Who is calling ([`Caller`], as the authentication middleware found out), and the rule that a
//! signature which changes something is accepted once ([`refuse_replays`]), with the verified
//! signature admission records itself ([`UnrecordedSignature`]). Depends on nothing of the API
//! but its error type, so the middleware, the limits and the builds wing can all use it.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use kiln_shared::domain::UserId;
use kiln_shared::redis::{SignatureRecord, SignatureUse};

use crate::error::ApiError;

/// Who is calling, as the authentication middleware found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An operator token: everything.
    Operator,
    /// The product back end (an HMAC signature): everything.
    Backend,
    /// A user token: that user's projects, builds and webhooks.
    User { user_id: UserId, token_id: String },
}

impl Caller {
    /// The user a user token is limited to; `None` for the operator and the back end.
    pub fn user(&self) -> Option<&UserId> {
        match self {
            Caller::User { user_id, .. } => Some(user_id),
            Caller::Operator | Caller::Backend => None,
        }
    }

    /// Whether the caller may see `user`'s projects and builds.
    pub fn sees(&self, user: &UserId) -> bool {
        self.user().is_none_or(|own| own == user)
    }

    /// `Ok` when the caller may see `user`'s things, else the 404 `missing` makes (the same
    /// answer as for something that does not exist).
    pub fn check(&self, user: &UserId, missing: impl FnOnce() -> ApiError) -> Result<(), ApiError> {
        if self.sees(user) {
            Ok(())
        } else {
            Err(missing())
        }
    }

    /// Routes for the operator and the back end only (the fleet, metrics, token creation):
    /// for a user token they do not exist.
    pub fn require_privileged(&self) -> Result<(), ApiError> {
        match self {
            Caller::User { .. } => Err(ApiError::NotFound("no such route; see /openapi.json".into())),
            Caller::Operator | Caller::Backend => Ok(()),
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(req.extensions().get::<Caller>().cloned().ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!(
                "a handler that needs a Caller runs without authenticate"
            ))
        }))
    }
}

/// A signature that changes something is accepted once (across every API instance: the record
/// is in Redis), until its timestamp leaves the window; the same request twice in one second
/// carries an `X-Kiln-Nonce` each (it is signed). A client that retries one request with
/// the same `Idempotency-Key` may send the same signature again: idempotency answers it with
/// the first answer. Reads (GET, HEAD) are not recorded: replaying one changes nothing, and a
/// back end may poll the same URL twice in a second.
pub fn refuse_replays(found: SignatureUse) -> Result<(), ApiError> {
    match found {
        SignatureUse::First | SignatureUse::Retry => Ok(()),
        SignatureUse::Replayed => Err(ApiError::Unauthorized(
            "this X-Kiln-Signature was already used: a signed request that changes something is accepted once (sign each request anew, with an X-Kiln-Nonce to send the same request twice in a second; a retry of one request must carry the same Idempotency-Key)".to_owned(),
        )),
    }
}

/// A verified signature of a build request whose use admission records (in its first Redis
/// round trip) and refuses if it was used before ([`refuse_replays`]).
#[derive(Debug, Clone)]
pub struct UnrecordedSignature(pub SignatureRecord);
