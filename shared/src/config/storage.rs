//! Where artifacts live, and how to reach S3.

use std::path::PathBuf;

use secrecy::SecretString;

use super::definition::{section, Fallback, Kind, Variable, ALL};

section! {
    title: "Storage",
    intro: "Where artifacts live, and how to reach S3 (Cloudflare R2, Garage, AWS).",
    ARTIFACTS = Variable::new(
        "KILN_ARTIFACTS",
        Kind::Format("`file:///abs/path` or `s3://bucket[/prefix]`"),
        Fallback::Required,
        ALL,
        "where artifacts live (file:///abs/path or s3://bucket)",
    )
    .example("s3://kiln-artifacts");
    S3_ENDPOINT = Variable::new(
        "KILN_S3_ENDPOINT",
        Kind::Url,
        Fallback::Otherwise("AWS's endpoint for the region"),
        ALL,
        "the S3 endpoint (R2: `https://<account>.r2.cloudflarestorage.com`)",
    )
    .example("https://ACCOUNT_ID.r2.cloudflarestorage.com");
    S3_REGION = Variable::new(
        "KILN_S3_REGION",
        Kind::Text,
        Fallback::Value("auto"),
        ALL,
        "the S3 region",
    );
    AWS_ACCESS_KEY_ID = Variable::new(
        "AWS_ACCESS_KEY_ID",
        Kind::Text,
        Fallback::Otherwise("AWS's default credential chain"),
        ALL,
        "the S3 access key's id",
    )
    .example("CHANGE-ME");
    AWS_SECRET_ACCESS_KEY = Variable::new(
        "AWS_SECRET_ACCESS_KEY",
        Kind::Text,
        Fallback::Otherwise("AWS's default credential chain"),
        ALL,
        "the S3 access key's secret",
    )
    .secret()
    .example("CHANGE-ME");
}

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
