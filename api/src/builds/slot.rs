//! Who holds a project's slot ([`SlotHolder`]): at most one queued-or-running build, or one
//! rollback in progress, per project. Whether the holder is still live, and the 409 that names
//! it.

use std::fmt;

use kiln_shared::db::versions;
use kiln_shared::domain::{ProjectId, UserId, VersionId};

use super::context::Builds;
use crate::error::ApiError;

/// The holder of a project's slot, as Redis stores it: a build's id, or `rollback:<id>` for a
/// rollback in progress. [`SlotHolder::parse`] and `Display` are each other's inverse, so the
/// value written back (to release the slot) is always the one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotHolder {
    /// A build: it holds the slot while it is queued or running.
    Build(VersionId),
    /// A rollback (the id of the version it records): its hold expires by itself, so it is
    /// always live.
    Rollback(VersionId),
    /// A value Kiln does not write (not a build id in its canonical form): never live, so
    /// released as a stale claim.
    Unknown(String),
}

const ROLLBACK_PREFIX: &str = "rollback:";

impl SlotHolder {
    /// The holder a slot's value names.
    pub fn parse(raw: &str) -> Self {
        // Only an id written as Kiln writes it: anything else would not be released by its
        // `Display`, which is what the slot is compared with.
        let canonical = |raw: &str| VersionId::parse(raw).ok().filter(|id| id.to_string() == raw);
        let typed = match raw.strip_prefix(ROLLBACK_PREFIX) {
            Some(rollback) => canonical(rollback).map(SlotHolder::Rollback),
            None => canonical(raw).map(SlotHolder::Build),
        };
        typed.unwrap_or_else(|| SlotHolder::Unknown(raw.to_owned()))
    }

    /// Whether the holder still holds the slot: a build while it is queued or running, a
    /// rollback always.
    pub async fn is_live(&self, b: &Builds<'_>) -> Result<bool, ApiError> {
        match self {
            SlotHolder::Rollback(_) => Ok(true),
            SlotHolder::Unknown(_) => Ok(false),
            SlotHolder::Build(id) => Ok(versions::get(b.db, *id)
                .await?
                .is_some_and(|v| !v.status.is_final())),
        }
    }

    /// The 409 of a request that finds this holder in the project's slot.
    pub fn conflict(&self) -> ApiError {
        match self {
            SlotHolder::Rollback(rollback) => ApiError::RollbackInFlight {
                message: format!("a rollback of this project is in progress: {rollback}"),
                build_id: rollback.to_string(),
            },
            SlotHolder::Build(_) | SlotHolder::Unknown(_) => ApiError::BuildInFlight {
                message: format!("another build of this project is queued or running: {self}"),
                build_id: self.to_string(),
            },
        }
    }
}

impl fmt::Display for SlotHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotHolder::Build(id) => write!(f, "{id}"),
            SlotHolder::Rollback(id) => write!(f, "{ROLLBACK_PREFIX}{id}"),
            SlotHolder::Unknown(raw) => f.write_str(raw),
        }
    }
}

/// The build holding the project's slot, if it is still queued or running.
/// A Redis error here is not fatal: the atomic admission that follows decides, and records the
/// build as failed if Redis is really down.
async fn live_holder(
    b: &Builds<'_>,
    user: &UserId,
    project: &ProjectId,
) -> Result<Option<SlotHolder>, ApiError> {
    let holder = match b.queue.inflight(user, project).await {
        Ok(Some(holder)) => SlotHolder::parse(&holder),
        Ok(None) => return Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the in-flight claim");
            return Ok(None);
        }
    };
    Ok(holder.is_live(b).await?.then_some(holder))
}

/// The build holding the project's slot when it is still queued or running, as a 409.
pub async fn refuse_if_held(b: &Builds<'_>, user: &UserId, project: &ProjectId) -> Result<(), ApiError> {
    match live_holder(b, user, project).await? {
        Some(holder) => Err(holder.conflict()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_written_back_as_it_was_read() {
        let id = VersionId::new();
        for raw in [
            id.to_string(),
            format!("rollback:{id}"),
            id.to_string().to_ascii_uppercase(),
            format!("rollback:{}", id.to_string().to_ascii_uppercase()),
            "rollback:".to_owned(),
            "something else".to_owned(),
        ] {
            assert_eq!(SlotHolder::parse(&raw).to_string(), raw);
        }
        assert_eq!(SlotHolder::parse(&id.to_string()), SlotHolder::Build(id));
        assert_eq!(
            SlotHolder::parse(&format!("rollback:{id}")),
            SlotHolder::Rollback(id)
        );
    }

    #[test]
    fn a_conflict_names_the_holder() {
        let id = VersionId::new();
        let ApiError::RollbackInFlight { message, build_id } = SlotHolder::Rollback(id).conflict() else {
            panic!("a conflict");
        };
        assert_eq!(build_id, id.to_string());
        assert!(
            message.starts_with("a rollback of this project is in progress"),
            "{message}"
        );
        let ApiError::BuildInFlight { build_id, .. } = SlotHolder::Build(id).conflict() else {
            panic!("a conflict");
        };
        assert_eq!(build_id, id.to_string());
    }
}
