//! Refreshing the advisory database from an OSV export (`KILN_AUDIT_SOURCE`, by default OSV's
//! `npm/all.zip`), run by `kiln-builder maintain` on each builder host.
//!
//! - A conditional GET (`If-None-Match` / `If-Modified-Since` from the last refresh, kept in a
//!   state file beside the folder): an unchanged export costs one request.
//! - The zip is streamed to disk under a size cap (`KILN_AUDIT_MAX_MB`), then unpacked into a
//!   new folder beside the database: only flat `*.json` entries, under a cap on the unpacked
//!   bytes (a zip bomb stops there), nothing outside the new folder.
//! - The new folder must read as a database with records before it replaces the old one
//!   (two renames); the daemons see the change by the folder's time and read it again, and
//!   keep the old one if the new one cannot be read. A failed refresh leaves the old one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::Advisories;

/// The unpacked records may take this many times the download cap.
const UNPACKED_FACTOR: u64 = 16;

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("fetching {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("the export at {url} is larger than {limit_mb} MB (KILN_AUDIT_MAX_MB)")]
    TooLarge { url: String, limit_mb: u64 },
    #[error("the export is not a readable zip: {0}")]
    Unpack(String),
    #[error("the export holds no advisory records")]
    Empty,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RefreshError {
    let what = what.into();
    move |source| RefreshError::Io { what, source }
}

/// What a refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshReport {
    pub source: String,
    /// A new export replaced the database (false: unchanged since the last refresh).
    pub updated: bool,
    /// Records in the database now (when it was updated).
    pub records: usize,
    /// Zip entries skipped (not a flat `*.json` name).
    pub skipped_entries: usize,
    pub downloaded_bytes: u64,
}

/// What the last refresh fetched, for the next conditional GET.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SourceState {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// A file beside `db` (hidden, named after it).
fn beside(db: &Path, what: &str) -> PathBuf {
    let name = db
        .file_name()
        .map_or("osv".into(), |n| n.to_string_lossy().into_owned());
    db.with_file_name(format!(".{name}.{what}"))
}

/// Refreshes the database folder `db` from the zip at `url`.
pub async fn refresh(url: &str, db: &Path, max_bytes: u64) -> Result<RefreshReport, RefreshError> {
    let fetch = |reason: String| RefreshError::Fetch {
        url: url.to_owned(),
        reason,
    };
    let parent = db.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    let state_path = beside(db, "source.json");
    let state: SourceState = std::fs::read(&state_path)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .filter(|s: &SourceState| s.url == url && db.is_dir())
        .unwrap_or_default();

    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(600))
        .build()
        .map_err(|e| fetch(e.to_string()))?;
    let mut request = client.get(url);
    if let Some(etag) = &state.etag {
        request = request.header(reqwest::header::IF_NONE_MATCH, etag);
    }
    if let Some(at) = &state.last_modified {
        request = request.header(reqwest::header::IF_MODIFIED_SINCE, at);
    }
    let response = request.send().await.map_err(|e| fetch(e.to_string()))?;
    let mut report = RefreshReport {
        source: url.to_owned(),
        ..RefreshReport::default()
    };
    if response.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(report);
    }
    if !response.status().is_success() {
        return Err(fetch(format!("answered {}", response.status())));
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let next = SourceState {
        url: url.to_owned(),
        etag: header(reqwest::header::ETAG),
        last_modified: header(reqwest::header::LAST_MODIFIED),
    };
    let too_large = || RefreshError::TooLarge {
        url: url.to_owned(),
        limit_mb: max_bytes >> 20,
    };
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(too_large());
    }

    // Download, unpack, check, swap; whatever fails leaves no temporary behind.
    let tag = ulid::Ulid::new().to_string();
    let download = beside(db, &format!("download-{tag}.zip"));
    let fresh = beside(db, &format!("new-{tag}"));
    let result = async {
        let mut file = std::fs::File::create(&download).map_err(io("creating the download"))?;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| fetch(e.to_string()))?;
            report.downloaded_bytes += chunk.len() as u64;
            if report.downloaded_bytes > max_bytes {
                return Err(too_large());
            }
            file.write_all(&chunk).map_err(io("writing the download"))?;
        }
        file.sync_all().map_err(io("writing the download"))?;
        let (zip, dir) = (download.clone(), fresh.clone());
        let (records, skipped) = tokio::task::spawn_blocking(move || {
            let skipped = unpack(&zip, &dir, max_bytes.saturating_mul(UNPACKED_FACTOR))?;
            let loaded = Advisories::load(&dir).map_err(|e| RefreshError::Unpack(e.to_string()))?;
            if loaded.records == 0 {
                return Err(RefreshError::Empty);
            }
            Ok((loaded.records, skipped))
        })
        .await
        .map_err(|e| RefreshError::Unpack(e.to_string()))??;
        report.records = records;
        report.skipped_entries = skipped;
        swap(db, &fresh, &beside(db, &format!("old-{tag}")))?;
        Ok(())
    }
    .await;
    let _ = std::fs::remove_file(&download);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&fresh);
        return Err(e);
    }
    report.updated = true;
    let state = serde_json::to_vec(&next).expect("the state always serialises");
    std::fs::write(&state_path, state).map_err(io(format!("writing {}", state_path.display())))?;
    Ok(report)
}

/// Unpacks the flat `*.json` entries of `zip` into the new folder `dir`, at most `cap` bytes
/// in all; returns how many entries were skipped.
fn unpack(zip: &Path, dir: &Path, cap: u64) -> Result<usize, RefreshError> {
    let bad = |e: zip::result::ZipError| RefreshError::Unpack(e.to_string());
    let file = std::fs::File::open(zip).map_err(io("opening the download"))?;
    let mut archive = zip::ZipArchive::new(file).map_err(bad)?;
    std::fs::create_dir(dir).map_err(io(format!("creating {}", dir.display())))?;
    let (mut written, mut skipped) = (0u64, 0usize);
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(bad)?;
        let Ok(name) = entry.name().map(|n| n.into_owned()) else {
            skipped += 1;
            continue;
        };
        let flat = !name.is_empty()
            && !name.starts_with('.')
            && name.ends_with(".json")
            && !name.contains(['/', '\\', '\0']);
        if !entry.is_file() || !flat {
            skipped += 1;
            continue;
        }
        let mut out = std::fs::File::create(dir.join(&name)).map_err(io(format!("writing {name}")))?;
        let copied = std::io::copy(&mut (&mut entry).take(cap - written + 1), &mut out)
            .map_err(|e| RefreshError::Unpack(format!("{name}: {e}")))?;
        written += copied;
        if written > cap {
            return Err(RefreshError::Unpack(format!(
                "it unpacks to more than {} MB",
                cap >> 20
            )));
        }
    }
    Ok(skipped)
}

/// Puts `fresh` in the place of `db` (moving the old folder aside to `old`, then removing it).
fn swap(db: &Path, fresh: &Path, old: &Path) -> Result<(), RefreshError> {
    let had_old = match std::fs::rename(db, old) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io(format!("moving {} aside", db.display()))(e)),
    };
    if let Err(e) = std::fs::rename(fresh, db) {
        if had_old {
            let _ = std::fs::rename(old, db);
        }
        return Err(io(format!("putting the new database at {}", db.display()))(e));
    }
    if had_old {
        std::fs::remove_dir_all(old).map_err(io(format!("removing {}", old.display())))?;
    }
    Ok(())
}
