//! Admission's two Postgres statements, batched across concurrent requests.

use kiln_shared::db::batch::Batcher;
use kiln_shared::db::versions::{self, NewVersion, Version};
use kiln_shared::db::PgPool;
use kiln_shared::domain::{ProjectId, UserId};

/// The largest batch of one admission statement, and how many of each run at once. One: the
/// next batch gathers while the current one runs, so batches grow with the load, and Postgres
/// runs one statement of many rows instead of many small ones (its cost is mostly per
/// statement; measured with `ops/bench/run.sh admission`: 1 beat 2 and 4).
const MAX_BATCH: usize = 64;
const PARALLEL_BATCHES: usize = 1;

/// Admission's two Postgres statements, each batched across concurrent requests
/// ([`kiln_shared::db::batch`]): the projects' base versions (rebuilds only: a first build
/// skips it, see `admit`), then the new rows.
#[derive(Debug, Clone)]
pub struct AdmissionDb {
    pub(super) bases: Batcher<(UserId, ProjectId), Option<Version>>,
    pub(super) rows: Batcher<NewVersion, bool>,
}

impl AdmissionDb {
    /// The size of the pool to give [`AdmissionDb::new`]: a connection per batch in flight.
    pub const CONNECTIONS: u32 = 2 * PARALLEL_BATCHES as u32;

    /// The batchers; `pool` is theirs alone (a connection per batch in flight, generic plans:
    /// see [`kiln_shared::db::connect_generic`]).
    pub fn new(pool: &PgPool) -> Self {
        let p = pool.clone();
        let bases = Batcher::new(
            "latest_deployed",
            MAX_BATCH,
            PARALLEL_BATCHES,
            move |keys: Vec<_>| {
                let p = p.clone();
                async move { versions::latest_deployed_each(&p, &keys).await }
            },
        );
        let p = pool.clone();
        let rows = Batcher::new(
            "insert_queued",
            MAX_BATCH,
            PARALLEL_BATCHES,
            move |rows: Vec<_>| {
                let p = p.clone();
                async move { versions::insert_queued(&p, &rows).await }
            },
        );
        Self { bases, rows }
    }
}
