//! The artifact store contract, run against both backends: the filesystem and a real
//! S3-compatible server (Garage, started by ops/test.sh; it checks SigV4 and the region).

use bytes::Bytes;
use kiln_shared::config::{ArtifactsLocation, S3Settings};
use kiln_shared::domain::VersionId;
use kiln_shared::store::{sha256_hex, Artifacts, BlobPlace, Encoding, Manifest, ManifestKind, StoreError};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run the tests through ops/test.sh"))
}

fn s3_settings(secret: &str) -> S3Settings {
    S3Settings {
        endpoint: Some(env("KILN_TEST_S3_ENDPOINT")),
        region: env("KILN_TEST_S3_REGION"),
        access_key_id: Some(env("KILN_TEST_S3_ACCESS_KEY")),
        secret_access_key: Some(secret.to_owned().into()),
    }
}

async fn s3_store() -> Artifacts {
    let prefix = format!(
        "store-test-{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    );
    let location = ArtifactsLocation::S3 {
        bucket: env("KILN_TEST_S3_BUCKET"),
        prefix,
    };
    Artifacts::open(&location, &s3_settings(&env("KILN_TEST_S3_SECRET_KEY")))
        .await
        .unwrap()
}

async fn contract(store: Artifacts) {
    store.check().await.expect("reachable");

    // Blobs are content-addressed and uploaded once.
    let body = Bytes::from_static(b"<h1>hello</h1>");
    let first = store.put_blob(body.clone()).await.unwrap();
    let hash = first.hash.clone();
    assert_eq!(hash, sha256_hex(&body));
    assert!(first.uploaded);
    assert_eq!(
        (first.encoding, first.stored_size),
        (Encoding::Identity, 14),
        "too small to compress"
    );
    let again = store.put_blob(body.clone()).await.unwrap();
    assert_eq!(again.hash, hash);
    assert!(!again.uploaded, "an existing blob is not uploaded again");
    assert_eq!(store.get_blob(&hash, Encoding::Identity).await.unwrap(), body);
    assert!(store.has_blob(&hash, Encoding::Identity).await.unwrap());

    // A missing blob is an error that names it; a missing manifest is None.
    let missing = sha256_hex(b"never stored");
    assert!(!store.has_blob(&missing, Encoding::Identity).await.unwrap());
    match store.get_blob(&missing, Encoding::Identity).await {
        Err(StoreError::MissingBlob { hash }) => assert_eq!(hash, missing),
        other => panic!("expected MissingBlob, got {other:?}"),
    }
    let id = VersionId::new();
    let key = Artifacts::manifest_key(id, ManifestKind::Output);
    assert_eq!(store.get_manifest(&key).await.unwrap(), None);

    // Manifests round-trip and are replaced whole.
    let mut m = Manifest::default();
    m.insert("index.html", hash.clone(), body.len() as u64);
    store.put_manifest(&key, &m).await.unwrap();
    assert_eq!(store.get_manifest(&key).await.unwrap(), Some(m.clone()));
    m.insert("app.js", hash.clone(), body.len() as u64);
    store.put_manifest(&key, &m).await.unwrap();
    let read = store.get_manifest(&key).await.unwrap().unwrap();
    assert_eq!(read.files.len(), 2);
    assert_eq!(read.files["index.html"].content_type, "text/html; charset=utf-8");

    // A large body that compresses is kept gzip-compressed under `<hash>.gz`, and read back
    // whole, or as it is stored for a client that accepts gzip.
    let big: Vec<u8> = (0..(6 * 1024 * 1024u32)).map(|i| (i % 251) as u8).collect();
    let gz = store.put_blob(Bytes::from(big.clone())).await.unwrap();
    assert_eq!((gz.encoding, gz.uploaded), (Encoding::Gzip, true));
    assert!(
        gz.stored_size * 20 < big.len() as u64,
        "stored {} bytes",
        gz.stored_size
    );
    assert!(store.has_blob(&gz.hash, Encoding::Gzip).await.unwrap());
    assert!(!store.has_blob(&gz.hash, Encoding::Identity).await.unwrap());
    let again = store.put_blob(Bytes::from(big.clone())).await.unwrap();
    assert_eq!((again.uploaded, again.stored_size), (false, gz.stored_size));
    let mut tree = Manifest::default();
    tree.insert_stored("big.js", gz.clone());
    let entry = &tree.files["big.js"];
    assert_eq!(entry.expected_stored_size(), Some(gz.stored_size));
    assert_eq!(store.read(entry).await.unwrap().as_ref(), big.as_slice());
    let (stored, encoding) = store.read_as(entry, true).await.unwrap();
    assert_eq!((stored.len() as u64, encoding), (gz.stored_size, Encoding::Gzip));
    let (content, encoding) = store.read_as(entry, false).await.unwrap();
    assert_eq!((content.len(), encoding), (big.len(), Encoding::Identity));

    // Incompressible bytes are kept as they are.
    let noise: Vec<u8> = (0..300_000).map(|_| rand::random::<u8>()).collect();
    let plain = store.put_blob(Bytes::from(noise.clone())).await.unwrap();
    assert_eq!(
        (plain.encoding, plain.stored_size),
        (Encoding::Identity, noise.len() as u64)
    );
    assert_eq!(
        store
            .get_blob(&plain.hash, Encoding::Identity)
            .await
            .unwrap()
            .as_ref(),
        noise.as_slice()
    );

    // Logs.
    store
        .put_log(id, Bytes::from_static(b"$ pnpm build\n"))
        .await
        .unwrap();
    assert_eq!(
        store.get_log(id).await.unwrap().unwrap().as_ref(),
        b"$ pnpm build\n"
    );
}

/// What maintenance needs of a backend: listing, moving (stamped with the time of the move),
/// deleting; and readers finding a blob wherever maintenance put it.
async fn maintenance_contract(store: Artifacts) {
    let started = chrono::Utc::now() - chrono::Duration::seconds(5);
    let mut hashes = Vec::new();
    for i in 0..3 {
        hashes.push(
            store
                .put_blob(Bytes::from(format!("blob {i}")))
                .await
                .unwrap()
                .hash,
        );
    }
    let id = VersionId::new();
    store.put_log(id, Bytes::from_static(b"log")).await.unwrap();
    let list = |prefix: &'static str| {
        let store = store.clone();
        async move {
            let mut rx = store.objects().list(prefix);
            let mut all = Vec::new();
            while let Some(o) = rx.recv().await {
                all.push(o.unwrap());
            }
            all.sort_by(|a, b| a.key.cmp(&b.key));
            all
        }
    };
    let hot = list("blobs/sha256/").await;
    let mut expected: Vec<String> = hashes
        .iter()
        .map(|h| BlobPlace::Hot.key(h, Encoding::Identity))
        .collect();
    expected.sort();
    assert_eq!(hot.iter().map(|o| o.key.clone()).collect::<Vec<_>>(), expected);
    assert!(hot.iter().all(|o| o.size == 6 && o.modified > started), "{hot:?}");
    assert_eq!(list("logs/").await.len(), 1);
    assert!(list("trash/").await.is_empty());

    // Moved to the trash: gone from blobs/, listed there, still readable (and moved back).
    let objects = store.objects();
    assert!(objects
        .move_object(
            &BlobPlace::Hot.key(&hashes[0], Encoding::Identity),
            &BlobPlace::Trash.key(&hashes[0], Encoding::Identity)
        )
        .await
        .unwrap());
    assert!(
        !objects
            .move_object(
                &BlobPlace::Hot.key(&hashes[0], Encoding::Identity),
                &BlobPlace::Trash.key(&hashes[0], Encoding::Identity)
            )
            .await
            .unwrap(),
        "nothing left to move"
    );
    assert_eq!(list("trash/blobs/sha256/").await.len(), 1);
    assert_eq!(list("blobs/sha256/").await.len(), 2);
    assert!(!store.has_blob(&hashes[0], Encoding::Identity).await.unwrap());
    assert_eq!(
        &store.get_blob(&hashes[0], Encoding::Identity).await.unwrap()[..],
        b"blob 0"
    );
    assert!(
        store.has_blob(&hashes[0], Encoding::Identity).await.unwrap(),
        "a reader brings it back"
    );
    assert!(list("trash/").await.is_empty());

    // Archived: readable where it is.
    objects
        .move_object(
            &BlobPlace::Hot.key(&hashes[1], Encoding::Identity),
            &BlobPlace::Archive.key(&hashes[1], Encoding::Identity),
        )
        .await
        .unwrap();
    assert_eq!(
        &store.get_blob(&hashes[1], Encoding::Identity).await.unwrap()[..],
        b"blob 1"
    );
    assert!(!store.has_blob(&hashes[1], Encoding::Identity).await.unwrap());

    // Deleted, twice (the second time is not an error).
    objects
        .delete(&BlobPlace::Hot.key(&hashes[2], Encoding::Identity))
        .await
        .unwrap();
    objects
        .delete(&BlobPlace::Hot.key(&hashes[2], Encoding::Identity))
        .await
        .unwrap();
    assert!(matches!(
        store.get_blob(&hashes[2], Encoding::Identity).await,
        Err(StoreError::MissingBlob { .. })
    ));
    assert_eq!(list("blobs/sha256/").await.len(), 1);
}

/// A filesystem store in `dir/a`.
async fn fs_store(dir: &std::path::Path) -> Artifacts {
    Artifacts::open(&ArtifactsLocation::File(dir.join("a")), &s3_settings("unused"))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_filesystem_store_keeps_the_maintenance_contract() {
    let dir = tempfile::tempdir().unwrap();
    maintenance_contract(fs_store(dir.path()).await).await;
}

#[tokio::test]
async fn the_s3_store_keeps_the_maintenance_contract() {
    maintenance_contract(s3_store().await).await;
}

#[tokio::test]
async fn the_filesystem_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(fs_store(dir.path()).await).await;
    // Nothing half-written is left behind, and blobs are sharded by their hash.
    let mut stack = vec![dir.path().to_path_buf()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files += 1;
                assert!(!e
                    .file_name()
                    .to_string_lossy()
                    .ends_with(kiln_shared::store::TMP_SUFFIX));
            }
        }
    }
    assert_eq!(files, 5, "3 blobs, 1 manifest and 1 log, nothing else");
    let blob = sha256_hex(b"<h1>hello</h1>");
    assert!(dir
        .path()
        .join("a/blobs/sha256")
        .join(&blob[..2])
        .join(&blob)
        .is_file());
}

#[tokio::test]
async fn the_s3_store_keeps_the_contract() {
    contract(s3_store().await).await;
}

#[tokio::test]
async fn the_s3_store_refuses_a_wrong_secret() {
    let location = ArtifactsLocation::S3 {
        bucket: env("KILN_TEST_S3_BUCKET"),
        prefix: "wrong".into(),
    };
    let store = Artifacts::open(
        &location,
        &s3_settings("0000000000000000000000000000000000000000000000000000000000000000"),
    )
    .await
    .unwrap();
    let err = store.put_blob(Bytes::from_static(b"x")).await.unwrap_err();
    assert!(matches!(err, StoreError::Remote { .. }), "{err:?}");
    assert!(store.check().await.is_err());
}
