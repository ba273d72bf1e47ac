//! Where artifacts live, and how to reach S3.

use std::path::PathBuf;

use secrecy::SecretString;

/// The artifact store.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// `KILN_ARTIFACTS`: `file:///abs/path` or `s3://bucket[/prefix]` (required).
    pub artifacts: ArtifactsLocation,
    pub s3: S3Settings,
}

/// Where artifacts live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactsLocation {
    /// `file:///abs/path`
    File(PathBuf),
    /// `s3://bucket` or `s3://bucket/prefix`
    S3 { bucket: String, prefix: String },
}

impl ArtifactsLocation {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(path) = raw.strip_prefix("file://") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(format!("expected file:///absolute/path, got {raw:?}"));
            }
            return Ok(Self::File(path));
        }
        if let Some(rest) = raw.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("expected s3://bucket[/prefix], got {raw:?}"));
            }
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        Err(format!(
            "expected file:///absolute/path or s3://bucket[/prefix], got {raw:?}"
        ))
    }
}

/// S3 connection settings (R2, Garage, AWS).
#[derive(Debug, Clone)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
}
