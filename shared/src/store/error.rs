//! The error of every artifact store operation.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("artifact store I/O on {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("artifact store request for {key} failed: {reason}")]
    Remote { key: String, reason: String },
    #[error("manifest {key} is corrupt: {reason}")]
    CorruptManifest { key: String, reason: String },
    #[error("blob {hash} is missing from the artifact store")]
    MissingBlob { hash: String },
    #[error("blob {hash} is corrupt: {reason}")]
    CorruptBlob { hash: String, reason: String },
    #[error("manifest {key} is missing from the artifact store")]
    MissingManifest { key: String },
}

impl StoreError {
    /// The store could not be reached or could not write (a network error, an error answer, a
    /// full disk): trying again later may work. A corrupt or missing object stays so.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Io { .. } | StoreError::Remote { .. })
    }
}
