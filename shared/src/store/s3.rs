use aws_sdk_s3::config::{BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;
use secrecy::ExposeSecret;

use super::error::StoreError;
use super::object::{ObjectInfo, ObjectStore};
use crate::config::S3Settings;

/// Objects in an S3 bucket (Cloudflare R2, Garage, AWS), under an optional key prefix.
/// Path-style addressing, so any endpoint works without wildcard DNS.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Store {
    /// Builds a client. Explicit keys win; otherwise the AWS default credential chain is used.
    pub async fn connect(bucket: String, prefix: String, settings: &S3Settings) -> Self {
        let region = Region::new(settings.region.clone());
        let mut conf = match (&settings.access_key_id, &settings.secret_access_key) {
            (Some(id), Some(secret)) => aws_sdk_s3::config::Builder::new()
                .behavior_version(BehaviorVersion::latest())
                .region(region)
                .credentials_provider(aws_credential_types::Credentials::new(
                    id.clone(),
                    secret.expose_secret().to_owned(),
                    None,
                    None,
                    "kiln-settings",
                )),
            _ => {
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .region(region)
                    .load()
                    .await;
                aws_sdk_s3::config::Builder::from(&shared)
            }
        };
        conf = conf
            .force_path_style(true)
            // R2 and Garage do not accept every checksum the SDK would add by default.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &settings.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        Self {
            client: Client::from_conf(conf.build()),
            bucket,
            prefix,
        }
    }

    /// The bucket key of Kiln's `key` (`key("")` is the backend's own prefix).
    fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }
}

fn remote<E: std::error::Error>(key: &str, e: E) -> StoreError {
    StoreError::Remote {
        key: key.to_owned(),
        reason: DisplayErrorContext(e).to_string(),
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| remote(key, e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(remote(key, e)),
        };
        let body = out.body.collect().await.map_err(|e| remote(key, e))?;
        Ok(Some(body.into_bytes()))
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
        {
            Ok(head) => Ok(Some(head.content_length().unwrap_or_default().max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(remote(key, e)),
        }
    }

    fn list(&self, prefix: &str) -> tokio::sync::mpsc::Receiver<Result<ObjectInfo, StoreError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.key(prefix))
            .into_paginator()
            .send();
        let (own, prefix) = (self.key(""), prefix.to_owned());
        tokio::spawn(async move {
            while let Some(page) = pages.next().await {
                let page = match page {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(remote(&prefix, e))).await;
                        return;
                    }
                };
                for object in page.contents() {
                    let Some(key) = object.key().and_then(|k| k.strip_prefix(own.as_str())) else {
                        continue;
                    };
                    let modified = object
                        .last_modified()
                        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                        .unwrap_or_else(chrono::Utc::now);
                    let info = ObjectInfo {
                        key: key.to_owned(),
                        size: object.size().unwrap_or(0).max(0) as u64,
                        modified,
                    };
                    if tx.send(Ok(info)).await.is_err() {
                        return;
                    }
                }
            }
        });
        rx
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
            .map_err(|e| remote(key, e))?;
        Ok(())
    }

    async fn move_object(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        // Copy (which stamps the copy with the time), then delete: cut short, the object is at
        // both keys.
        match self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .copy_source(format!("{}/{}", self.bucket, self.key(from)))
            .key(self.key(to))
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.meta().code() == Some("NoSuchKey")) =>
            {
                return Ok(false)
            }
            Err(e) => return Err(remote(from, e)),
        }
        self.delete(from).await.map(|()| true)
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| remote(&self.bucket, e))?;
        Ok(())
    }
}
