//! The deletions of users' data ([`Deleter`]): a background task of every API instance takes
//! the oldest deletion nobody holds (`for update skip locked`, with a lease in the row), deletes
//! the user's projects one by one ([`super::delete_project`]) while renewing its lease and
//! recording its progress, and marks it done once the user has no project and no version left.
//! An instance that dies stops renewing; once the lease has expired, any instance (this one
//! after a restart, or another) takes the row over and carries on with the projects left. It
//! polls every [`POLL`], and a new deletion wakes it at once.
//!
//! Builds a user requests while the deletion runs are deleted with the rest: the deletion is
//! done only when a last look finds nothing of the user.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kiln_shared::db::deletions::{self, Deletion};
use kiln_shared::db::projects::delete as project_rows;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::state::AppState;

/// How long a deletion's lease lasts unrenewed; it is renewed every third of it.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often an idle instance looks for a deletion to take (one left by a dead instance).
pub const POLL: Duration = Duration::from_secs(2);

/// The background task of this API instance that works on user deletions.
#[derive(Debug, Clone)]
pub struct Deleter {
    owner: Arc<str>,
    wake: Arc<Notify>,
}

impl Default for Deleter {
    fn default() -> Self {
        Self {
            owner: format!("api-{}", ulid::Ulid::new().to_string().to_ascii_lowercase()).into(),
            wake: Arc::new(Notify::new()),
        }
    }
}

impl Deleter {
    /// Wakes the task: a deletion was recorded.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Works on deletions until `stop` is cancelled.
    pub async fn run(self, state: AppState, stop: CancellationToken) {
        loop {
            match deletions::take(&state.db, &self.owner, LEASE).await {
                Ok(Some(d)) => {
                    let id = d.id.clone();
                    tokio::select! {
                        r = self.work(&state, d) => if let Err(e) = r {
                            tracing::warn!(deletion = %id, error = %e, "a user deletion stopped (it is taken up again once its lease expires)");
                        },
                        () = stop.cancelled() => return,
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot look for user deletions"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Deletes the user's projects, renewing the lease meanwhile; stops when the lease is lost.
    async fn work(&self, state: &AppState, d: Deletion) -> Result<(), ApiError> {
        tracing::info!(deletion = %d.id, user = %d.user_id, "user deletion taken");
        let total = Arc::new(AtomicI32::new(d.projects_total));
        let done = Arc::new(AtomicI32::new(d.projects_deleted));
        let job = async {
            loop {
                let left = project_rows::of_user(&state.db, &d.user_id).await?;
                if left.is_empty() {
                    return Ok::<_, ApiError>(());
                }
                total.store(done.load(Ordering::SeqCst) + left.len() as i32, Ordering::SeqCst);
                self.renew(state, &d, &total, &done).await?;
                for project in left {
                    super::delete_project(&state.builds(), &d.user_id, &project).await?;
                    done.fetch_add(1, Ordering::SeqCst);
                    self.renew(state, &d, &total, &done).await?;
                }
            }
        };
        let keep = async {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                if let Err(e) = self.renew(state, &d, &total, &done).await {
                    return e;
                }
            }
        };
        tokio::select! {
            r = job => r?,
            lost = keep => return Err(lost),
        }
        deletions::finish(&state.db, &d.id, &self.owner).await?;
        tracing::info!(deletion = %d.id, projects = done.load(Ordering::SeqCst), "user deletion done");
        Ok(())
    }

    async fn renew(
        &self,
        state: &AppState,
        d: &Deletion,
        total: &AtomicI32,
        done: &AtomicI32,
    ) -> Result<(), ApiError> {
        let held = deletions::renew(
            &state.db,
            &d.id,
            &self.owner,
            LEASE,
            total.load(Ordering::SeqCst),
            done.load(Ordering::SeqCst),
        )
        .await?;
        if held {
            Ok(())
        } else {
            Err(ApiError::internal(anyhow::anyhow!(
                "the lease of deletion {} was lost (another instance took it over)",
                d.id
            )))
        }
    }
}
