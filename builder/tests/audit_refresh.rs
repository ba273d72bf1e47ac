//! Refreshing the advisory database from an OSV export over HTTP (`kiln-builder maintain`):
//! conditional GETs, a safe unpack, and a failed refresh that leaves the old database serving.
//! The export is served by an HTTP server on port 0 (it stands in for OSV's bucket, which this
//! machine cannot reach), built from the OSV record the audit tests use.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use kiln_builder::audit::refresh::{refresh, RefreshError};
use kiln_builder::audit::Auditor;

const RECORD: &str = include_str!("../../api/tests/fixtures/osv/GHSA-xvch-5gv4-984h.json");
const LOCKFILE: &str =
    "lockfileVersion: '9.0'\npackages:\n  minimist@1.2.5:\n    resolution: {integrity: x}\n  left-pad@1.0.0:\n    resolution: {integrity: y}\n";

/// What the server answers: the zip and its entity tag, and how many GETs it had.
#[derive(Default)]
struct Export {
    zip: Vec<u8>,
    etag: String,
    gets: usize,
}

fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in entries {
        out.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(body.as_bytes()).unwrap();
    }
    out.finish().unwrap().into_inner()
}

fn serve(export: Arc<Mutex<Export>>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let export = export.clone();
        App::new().route(
            "/npm/all.zip",
            web::get().to(move |req: HttpRequest| {
                let export = export.clone();
                async move {
                    let mut e = export.lock().unwrap();
                    e.gets += 1;
                    let tag = format!("\"{}\"", e.etag);
                    if req
                        .headers()
                        .get("if-none-match")
                        .is_some_and(|v| v.as_bytes() == tag.as_bytes())
                    {
                        return HttpResponse::NotModified().finish();
                    }
                    HttpResponse::Ok()
                        .insert_header(("ETag", tag))
                        .content_type("application/zip")
                        .body(e.zip.clone())
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}/npm/all.zip")
}

fn set(export: &Mutex<Export>, etag: &str, zip: Vec<u8>) {
    let mut e = export.lock().unwrap();
    e.etag = etag.to_owned();
    e.zip = zip;
}

/// Everything in `dir` but the database folder and the refresh's state file.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "npm" && n != ".npm.source.json")
        .collect();
    names.sort();
    names
}

#[actix_web::test]
async fn the_database_is_refreshed_from_an_export_and_a_bad_export_changes_nothing() {
    let export = Arc::new(Mutex::new(Export::default()));
    let url = serve(export.clone());
    let dir = tempfile::tempdir().unwrap();
    let osv = dir.path().join("osv");
    let db = osv.join("npm");
    let max = 1 << 20;

    // The first refresh: flat records only, nothing written outside the new folder.
    set(
        &export,
        "v1",
        zip_of(&[
            ("GHSA-xvch-5gv4-984h.json", RECORD),
            ("nested/GHSA-other.json", RECORD),
            ("../evil.json", RECORD),
            ("README.txt", "not a record"),
        ]),
    );
    let r = refresh(&url, &db, max).await.unwrap();
    assert!(r.updated);
    assert_eq!((r.records, r.skipped_entries), (1, 3), "{r:?}");
    assert!(db.join("GHSA-xvch-5gv4-984h.json").is_file());
    assert!(!dir.path().join("evil.json").exists() && !osv.join("evil.json").exists());
    assert_eq!(leftovers(&osv), Vec::<String>::new());
    let auditor = Auditor::open(&db).unwrap();
    let report = auditor.audit(LOCKFILE).unwrap();
    assert_eq!(report.critical.len(), 1, "{:?}", report.lines);

    // Unchanged upstream: one conditional GET, nothing replaced.
    let r = refresh(&url, &db, max).await.unwrap();
    assert!(!r.updated);
    assert_eq!(export.lock().unwrap().gets, 2);

    // A broken export, an empty one and an oversized one: errors, and the old database stays.
    set(&export, "v2", b"PK\x03\x04 not really a zip".to_vec());
    assert!(matches!(
        refresh(&url, &db, max).await,
        Err(RefreshError::Unpack(_))
    ));
    set(&export, "v3", zip_of(&[("README.txt", "nothing")]));
    assert!(matches!(refresh(&url, &db, max).await, Err(RefreshError::Empty)));
    // (ULIDs: text that barely compresses, so the zip itself is over the cap.)
    let big: String = (0..200).map(|_| ulid::Ulid::new().to_string()).collect();
    set(&export, "v4", zip_of(&[("GHSA-big.json", &big)]));
    assert!(matches!(
        refresh(&url, &db, 1024).await,
        Err(RefreshError::TooLarge { .. })
    ));
    // A bomb: a small download that unpacks past 16 times the cap.
    let bomb = "{}".repeat(20_000);
    set(&export, "v5", zip_of(&[("GHSA-bomb.json", &bomb)]));
    let err = refresh(&url, &db, 2048).await.unwrap_err();
    assert!(err.to_string().contains("unpacks to more than"), "{err}");
    assert!(db.join("GHSA-xvch-5gv4-984h.json").is_file());
    assert_eq!(leftovers(&osv), Vec::<String>::new(), "no temporary left behind");
    assert_eq!(auditor.audit(LOCKFILE).unwrap().critical.len(), 1);

    // A new export with a second record: swapped in, and a running auditor reads it.
    let second = RECORD
        .replace("GHSA-xvch-5gv4-984h", "GHSA-0000-0000-0001")
        .replace("minimist", "left-pad");
    set(
        &export,
        "v6",
        zip_of(&[
            ("GHSA-xvch-5gv4-984h.json", RECORD),
            ("GHSA-0000-0000-0001.json", &second),
        ]),
    );
    let r = refresh(&url, &db, max).await.unwrap();
    assert_eq!((r.updated, r.records), (true, 2));
    assert_eq!(leftovers(&osv), Vec::<String>::new());
    let report = auditor.audit(LOCKFILE).unwrap();
    assert_eq!(report.critical.len(), 2, "{:?}", report.lines);
}
