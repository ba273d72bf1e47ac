//! [`Builds`]: what the build lifecycle works with.

use kiln_shared::db::PgPool;
use kiln_shared::metrics::Metrics;
use kiln_shared::preview::PreviewUrls;
use kiln_shared::redis::{Fleet, Queue, QuotaLimits};
use kiln_shared::store::Artifacts;

use super::batch::AdmissionDb;

/// What the build lifecycle works with, borrowed from the API's state for one request.
#[derive(Debug, Clone, Copy)]
pub struct Builds<'a> {
    pub db: &'a PgPool,
    /// The queue, the projects' slots and their quotas (this worker's Redis connection).
    pub queue: &'a Queue,
    pub artifacts: &'a Artifacts,
    pub urls: &'a PreviewUrls,
    /// The fleet-wide quotas admission counts builds against.
    pub quotas: &'a QuotaLimits,
    pub batch: &'a AdmissionDb,
    /// The live builders (for queue estimates).
    pub fleet: &'a Fleet,
    pub metrics: &'a Metrics,
    /// Whether this farm has a generator (`KILN_GENERATOR_CMD`): a request with only a prompt
    /// can be built.
    pub generator: bool,
}
