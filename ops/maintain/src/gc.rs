//! Blob garbage collection and verification: mark, then sweep with a grace period and a trash.
//!
//! - **Mark.** Every version row names its manifests (sources in the row or the store, output
//!   in the store; a rollback shares its target's). Each manifest is read once; every blob it
//!   names is marked *hot* (a live version uses it) or, when only archived versions do, *cold*.
//! - **Sweep.** The three places (`blobs/`, `archive/blobs/`, `trash/blobs/`) are listed:
//!   - a hot blob belongs in `blobs/`, a cold one in `archive/` (moved there, or back);
//!   - an unmarked blob older than the grace period goes to `trash/` (younger: a build may be
//!     uploading it right now, its version not yet recorded);
//!   - a marked blob found only in `trash/` is moved back (a build deduplicated against it just
//!     before it was collected: readers also look in the trash, so nothing was ever lost);
//!   - an unmarked blob that has been in the trash longer than `trash_for` is deleted for good.
//! - **Verify.** A marked blob found nowhere, or of the wrong size, or (sampled, in `blobs/`)
//!   whose bytes do not hash to its name, is reported; its versions are marked `needs_rebuild`
//!   (a corrupt blob is moved aside to `corrupt/` first). A plain blob of the wrong size is
//!   corrupt; a compressed one of an unexpected size is read, inflated and hashed before it is
//!   judged (another release's zlib may have compressed the same content differently).
//!
//! A blob's name is its content's hash plus how it is stored (`<hash>` or `<hash>.gz`); the
//! two are different objects, each marked by the manifests that name it.
//! - **Manifests and logs** of versions that no longer exist are deleted after the grace period.
//!
//! Every change is a move or a delete of one object, and a move cut short leaves the object at
//! its old key or at both: a run killed at any point leaves every version readable, and the
//! next run finishes the job. Why mark-and-sweep and not reference counts: docs/design/decisions/mark-and-sweep-not-reference-counts.md.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use kiln_shared::db::retention::{self, VersionRefs};
use kiln_shared::domain::VersionId;
use kiln_shared::store::{encoding, BlobPlace, Encoding, Manifest, ManifestEntry, ObjectStore, StoreError};
use serde::Serialize;

use crate::{Farm, MaintainError};

/// Rows read from Postgres at a time.
const PAGE: i64 = 2000;
/// Store requests in flight at once.
const PARALLEL: usize = 16;
/// Hashes listed by name in a report (the counts are always whole).
const LISTED: usize = 50;

/// A blob's name as bytes (half the memory of its hex).
type Hash = [u8; 32];

/// A stored blob: its content's hash and its encoding at rest.
type Name = (Hash, Encoding);

fn parse_hash(hex: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok().map(|()| out)
}

/// The blob an object's name (after its place's prefix) holds.
fn parse_name(name: &str) -> Option<Name> {
    let (hex, encoding) = Encoding::split_name(name);
    parse_hash(hex).map(|h| (h, encoding))
}

/// The blob a manifest entry names (`None`: inline, or not a SHA-256).
fn name_of(entry: &ManifestEntry) -> Option<Name> {
    if entry.inline.is_some() {
        return None;
    }
    parse_hash(&entry.hash).map(|h| (h, entry.encoding))
}

fn key_of(place: BlobPlace, name: Name) -> String {
    place.key(&hex::encode(name.0), name.1)
}

/// What the marks say of one blob, and what the sweep found.
#[derive(Debug, Clone, Copy, Default)]
struct Mark {
    /// The content's size.
    size: u64,
    /// The stored object's expected size (unknown for a compressed blob of an old manifest).
    stored: Option<u64>,
    /// A compressed blob of an unexpected size: read and hashed before it is judged.
    suspect: bool,
    /// A live (not archived) version uses it: it belongs in `blobs/`.
    hot: bool,
    /// Where the sweep found it (or put it).
    found: Option<BlobPlace>,
    bad: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaceCount {
    pub objects: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    pub versions: u64,
    pub manifests: u64,
    /// Distinct blobs the versions reference.
    pub referenced: u64,
    pub referenced_bytes: u64,
    /// What each place held when listed.
    pub hot: PlaceCount,
    pub archive: PlaceCount,
    pub trash: PlaceCount,
    /// Blobs moved from `blobs/` to `archive/` (only archived versions use them).
    pub archived: u64,
    /// Blobs moved from `archive/` back to `blobs/` (a live version uses them again).
    pub unarchived: u64,
    /// Unreferenced blobs moved to the trash, and their bytes.
    pub trashed: u64,
    pub trashed_bytes: u64,
    /// Referenced blobs found only in the trash, moved back.
    pub restored: u64,
    /// Blobs deleted for good from the trash, and their bytes.
    pub deleted: u64,
    pub deleted_bytes: u64,
    /// Unreferenced blobs left alone because they are younger than the grace period.
    pub in_grace: u64,
    /// Copies of a blob at a second place (a move cut short), removed.
    pub duplicates: u64,
    /// Manifests and logs of versions that no longer exist, deleted.
    pub manifests_deleted: u64,
    pub logs_deleted: u64,
    pub verify: VerifyReport,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Referenced blobs found nowhere (hashes, the first few).
    pub missing: Vec<String>,
    pub missing_count: u64,
    /// Referenced blobs whose size or (sampled) hash is wrong, moved to `corrupt/`.
    pub corrupt: Vec<String>,
    pub corrupt_count: u64,
    /// Blobs read back and hashed (the sample, and compressed blobs of an unexpected size).
    pub sampled: u64,
    /// Manifests a version names that are missing or unreadable.
    pub missing_manifests: Vec<String>,
    /// Versions marked `needs_rebuild` (a blob or manifest of theirs is gone for good).
    pub needs_rebuild: Vec<String>,
}

/// One run of the GC and verification.
pub async fn collect(farm: &Farm, dry_run: bool) -> Result<GcReport, MaintainError> {
    let now = Utc::now();
    let settings = &farm.settings;
    let grace_before = now - chrono::Duration::from_std(settings.gc_grace).unwrap_or_default();
    let trash_before = now - chrono::Duration::from_std(settings.trash_for).unwrap_or_default();
    let store = farm.artifacts.objects();
    let mut report = GcReport::default();

    // --- Mark ---------------------------------------------------------------------------
    let marked = mark(farm, &mut report).await?;
    let Marked {
        mut marks,
        manifest_keys,
        versions,
    } = marked;
    report.referenced = marks.len() as u64;
    report.referenced_bytes = marks.values().map(|m| m.stored.unwrap_or(m.size)).sum();

    // --- Sweep: blobs/, then archive/, then trash/ --------------------------------------
    let mut sample = Sampler::new(settings.verify_sample);
    for place in BlobPlace::ALL {
        let mut listing = store.list(place.prefix());
        let mut moves: Vec<Action> = Vec::new();
        while let Some(object) = listing.recv().await {
            let object = object?;
            let Some(name) = object.key.strip_prefix(place.prefix()).and_then(parse_name) else {
                continue;
            };
            let count = match place {
                BlobPlace::Hot => &mut report.hot,
                BlobPlace::Archive => &mut report.archive,
                BlobPlace::Trash => &mut report.trash,
            };
            count.objects += 1;
            count.bytes += object.size;
            let action = sweep_one(
                place,
                name,
                object.size,
                object.modified,
                marks.get_mut(&name),
                grace_before,
                trash_before,
                &mut report,
            );
            if let Some(action) = action {
                moves.push(action);
            } else if let Some(mark) = marks.get(&name) {
                // Hashed from blobs/ only: reading archive/ may cost a retrieval fee (R2's
                // Infrequent Access); its sizes are still checked.
                if place == BlobPlace::Hot && mark.found == Some(place) && !mark.bad && !mark.suspect {
                    sample.offer(name);
                }
            }
            if moves.len() >= 256 {
                apply(store, std::mem::take(&mut moves), dry_run).await?;
            }
        }
        apply(store, moves, dry_run).await?;
    }

    // --- Verify -------------------------------------------------------------------------
    let suspects: Vec<Name> = marks
        .iter()
        .filter(|(_, m)| m.suspect && m.found.is_some())
        .map(|(name, _)| *name)
        .collect();
    for name in sample.take().into_iter().chain(suspects) {
        let Some(mark) = marks.get_mut(&name) else {
            continue;
        };
        let Some(place) = mark.found else {
            continue;
        };
        let key = key_of(place, name);
        let good = match store.get(&key).await? {
            Some(body) => {
                report.verify.sampled += 1;
                encoding::decode(name.1, body, mark.size)
                    .await
                    .is_ok_and(|content| kiln_shared::store::sha256_hex(&content) == hex::encode(name.0))
            }
            // Gone since the listing (a move back by a reader): not a finding.
            None => continue,
        };
        if !good {
            mark.bad = true;
            mark.found = None;
            if !dry_run {
                store.move_object(&key, &format!("corrupt/{key}")).await?;
            }
        }
    }
    let mut gone: HashSet<Name> = HashSet::new();
    for (name, mark) in &marks {
        let listed = || format!("{}{}", hex::encode(name.0), name.1.suffix());
        if mark.bad {
            report.verify.corrupt_count += 1;
            if report.verify.corrupt.len() < LISTED {
                report.verify.corrupt.push(listed());
            }
            gone.insert(*name);
        } else if mark.found.is_none() {
            report.verify.missing_count += 1;
            if report.verify.missing.len() < LISTED {
                report.verify.missing.push(listed());
            }
            gone.insert(*name);
        }
    }
    drop(marks);
    let lost_manifests: HashSet<&str> = report
        .verify
        .missing_manifests
        .iter()
        .map(String::as_str)
        .collect();
    if !gone.is_empty() || !lost_manifests.is_empty() {
        let broken = versions_using(farm, &gone, &lost_manifests).await?;
        if !dry_run {
            retention::mark_needs_rebuild(&farm.db, &broken).await?;
        }
        tracing::error!(
            missing = report.verify.missing_count,
            corrupt = report.verify.corrupt_count,
            versions = broken.len(),
            "blobs referenced by versions are gone: those versions need a rebuild"
        );
        report.verify.needs_rebuild = broken.iter().map(|v| v.to_string()).collect();
    }

    // --- Manifests and logs of deleted versions -----------------------------------------
    let mut doomed = Vec::new();
    let mut listing = store.list("manifests/");
    while let Some(object) = listing.recv().await {
        let object = object?;
        if !manifest_keys.contains(&object.key) && object.modified < grace_before {
            doomed.push(object.key);
        }
    }
    report.manifests_deleted = doomed.len() as u64;
    let mut listing = store.list("logs/");
    while let Some(object) = listing.recv().await {
        let object = object?;
        let version = object
            .key
            .strip_prefix("logs/")
            .and_then(|k| k.strip_suffix(".log"))
            .and_then(|id| VersionId::parse(id).ok());
        if version.is_some_and(|v| !versions.contains(&v)) && object.modified < grace_before {
            report.logs_deleted += 1;
            doomed.push(object.key);
        }
    }
    if !dry_run {
        futures::stream::iter(doomed.iter().map(|key| store.delete(key)))
            .buffer_unordered(PARALLEL)
            .try_collect::<Vec<()>>()
            .await?;
    }
    Ok(report)
}

/// What the sweep does with one object.
#[derive(Debug)]
enum Action {
    Move { from: String, to: String },
    Delete(String),
}

/// Decides the fate of the blob `hash` found at `place` (and updates its mark and the
/// counts as if the action were done).
#[allow(clippy::too_many_arguments)]
fn sweep_one(
    place: BlobPlace,
    name: Name,
    size: u64,
    modified: DateTime<Utc>,
    mark: Option<&mut Mark>,
    grace_before: DateTime<Utc>,
    trash_before: DateTime<Utc>,
    report: &mut GcReport,
) -> Option<Action> {
    let here = key_of(place, name);
    let Some(mark) = mark else {
        // Unreferenced.
        return match place {
            BlobPlace::Trash if modified < trash_before => {
                report.deleted += 1;
                report.deleted_bytes += size;
                Some(Action::Delete(here))
            }
            BlobPlace::Trash => None,
            _ if modified < grace_before => {
                report.trashed += 1;
                report.trashed_bytes += size;
                Some(Action::Move {
                    from: here,
                    to: key_of(BlobPlace::Trash, name),
                })
            }
            _ => {
                report.in_grace += 1;
                None
            }
        };
    };
    if mark.stored.is_some_and(|expected| expected != size) {
        if name.1 == Encoding::Identity {
            // The wrong bytes under this name. Another copy may still be right.
            if mark.found.is_none() {
                mark.bad = true;
            }
            return Some(Action::Move {
                from: here.clone(),
                to: format!("corrupt/{here}"),
            });
        }
        mark.suspect = true;
    }
    let belongs = if mark.hot {
        BlobPlace::Hot
    } else {
        BlobPlace::Archive
    };
    match mark.found {
        // Put here by this sweep (a move from an earlier place), listed again.
        Some(found) if found == place => return None,
        // Already found (or put) where it belongs: this is a second copy.
        Some(_) => {
            report.duplicates += 1;
            return Some(Action::Delete(here));
        }
        None => {}
    }
    mark.found = Some(belongs);
    mark.bad = false;
    if place == belongs {
        return None;
    }
    match (place, belongs) {
        (BlobPlace::Trash, _) => report.restored += 1,
        (_, BlobPlace::Archive) => report.archived += 1,
        _ => report.unarchived += 1,
    }
    Some(Action::Move {
        from: here,
        to: key_of(belongs, name),
    })
}

async fn apply(store: &dyn ObjectStore, actions: Vec<Action>, dry_run: bool) -> Result<(), StoreError> {
    if dry_run {
        return Ok(());
    }
    futures::stream::iter(actions.into_iter().map(|action| async move {
        match action {
            Action::Move { from, to } => store.move_object(&from, &to).await.map(|_| ()),
            Action::Delete(key) => store.delete(&key).await,
        }
    }))
    .buffer_unordered(PARALLEL)
    .try_collect::<Vec<()>>()
    .await
    .map(|_| ())
}

/// The result of the mark phase.
struct Marked {
    marks: HashMap<Name, Mark>,
    /// Every manifest key a version names.
    manifest_keys: HashSet<String>,
    /// Every version that exists.
    versions: HashSet<VersionId>,
}

async fn mark(farm: &Farm, report: &mut GcReport) -> Result<Marked, MaintainError> {
    let mut marks: HashMap<Name, Mark> = HashMap::new();
    // manifest key → used by a live version?
    let mut keys: HashMap<String, bool> = HashMap::new();
    let mut versions = HashSet::new();
    let mut after = None;
    loop {
        let page = retention::refs_page(&farm.db, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for v in &page {
            report.versions += 1;
            versions.insert(v.id);
            if let Some(m) = &v.source_manifest {
                mark_manifest(&mut marks, m, !v.archived);
            }
            for key in [&v.source_manifest_key, &v.output_manifest_key]
                .into_iter()
                .flatten()
            {
                *keys.entry(key.clone()).or_default() |= !v.archived;
            }
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    report.manifests = keys.len() as u64;
    let marks = Mutex::new(marks);
    let missing = Mutex::new(Vec::new());
    futures::stream::iter(keys.iter().map(|(key, hot)| {
        let (marks, missing) = (&marks, &missing);
        async move {
            match farm.artifacts.get_manifest(key).await {
                Ok(Some(m)) => mark_manifest(&mut marks.lock().expect("marks"), &m, *hot),
                Ok(None) | Err(StoreError::CorruptManifest { .. }) => {
                    missing.lock().expect("missing").push(key.clone())
                }
                Err(e) => return Err(e),
            }
            Ok(())
        }
    }))
    .buffer_unordered(PARALLEL)
    .try_collect::<Vec<()>>()
    .await?;
    report.verify.missing_manifests = missing.into_inner().expect("missing");
    Ok(Marked {
        marks: marks.into_inner().expect("marks"),
        manifest_keys: keys.into_keys().collect(),
        versions,
    })
}

fn mark_manifest(marks: &mut HashMap<Name, Mark>, manifest: &Manifest, hot: bool) {
    for entry in manifest.files.values() {
        let Some(name) = name_of(entry) else {
            if entry.inline.is_none() {
                tracing::warn!(hash = entry.hash, "a manifest names a blob that is not a SHA-256");
            }
            continue;
        };
        let mark = marks.entry(name).or_insert(Mark {
            size: entry.size,
            stored: entry.expected_stored_size(),
            ..Mark::default()
        });
        mark.hot |= hot;
    }
}

/// The versions that use a blob of `gone` or a manifest of `lost` (a second pass, run only
/// when verification found something).
async fn versions_using(
    farm: &Farm,
    gone: &HashSet<Name>,
    lost: &HashSet<&str>,
) -> Result<Vec<VersionId>, MaintainError> {
    let uses = |m: &Manifest| {
        m.files
            .values()
            .any(|e| name_of(e).is_some_and(|n| gone.contains(&n)))
    };
    let mut cache: HashMap<String, bool> = HashMap::new();
    let mut broken = Vec::new();
    let mut after = None;
    loop {
        let page: Vec<VersionRefs> = retention::refs_page(&farm.db, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for v in &page {
            let mut bad = v.source_manifest.as_ref().is_some_and(uses);
            for key in [&v.source_manifest_key, &v.output_manifest_key]
                .into_iter()
                .flatten()
            {
                if bad {
                    break;
                }
                if lost.contains(key.as_str()) {
                    bad = true;
                    break;
                }
                if let Some(known) = cache.get(key) {
                    bad = *known;
                    continue;
                }
                let b = match farm.artifacts.get_manifest(key).await {
                    Ok(Some(m)) => uses(&m),
                    Ok(None) | Err(StoreError::CorruptManifest { .. }) => true,
                    Err(e) => return Err(e.into()),
                };
                cache.insert(key.clone(), b);
                bad = b;
            }
            if bad {
                broken.push(v.id);
            }
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    Ok(broken)
}

/// A uniform sample of at most `k` blobs of `blobs/` (reservoir sampling), for hashing.
struct Sampler {
    k: usize,
    seen: u64,
    picked: Vec<Name>,
    rng: rand::rngs::StdRng,
}

impl Sampler {
    fn new(k: u64) -> Self {
        use rand::SeedableRng;
        Self {
            k: k as usize,
            seen: 0,
            picked: Vec::new(),
            rng: rand::rngs::StdRng::from_entropy(),
        }
    }

    fn offer(&mut self, hash: Name) {
        use rand::Rng;
        self.seen += 1;
        if self.picked.len() < self.k {
            self.picked.push(hash);
            return;
        }
        let j = self.rng.gen_range(0..self.seen) as usize;
        if j < self.k {
            self.picked[j] = hash;
        }
    }

    fn take(self) -> Vec<Name> {
        self.picked
    }
}
