//! The preview server's routing: a `Host` header to a label, a URL path to a file of the
//! version's manifest. Only a manifest's own files are ever answered, and never for a path that
//! climbs out.
#![no_main]

use arbitrary::Arbitrary;
use kiln_api::untrusted;
use kiln_fuzz::percent_decode;
use kiln_shared::preview::PreviewUrls;
use kiln_shared::store::Manifest;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    host: &'a str,
    url_path: &'a str,
    files: Vec<&'a str>,
}

fuzz_target!(|i: Input| {
    let urls = PreviewUrls {
        scheme: "http".into(),
        domain: "localhost".into(),
        port: Some(8081),
    };
    if let Some(label) = urls.label_of_host(i.host) {
        assert!(!label.is_empty() && label.len() <= 63, "{label:?}");
        assert!(
            label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "{label:?}"
        );
    }
    let mut manifest = Manifest::default();
    for f in i.files.iter().take(32) {
        manifest.insert(f, "0".repeat(64), 1);
    }
    if let Some(file) = untrusted::preview_file(&manifest, i.url_path) {
        assert!(manifest.files.contains_key(file));
        let climbs = |p: &str| p.split('/').any(|s| s == "..");
        assert!(
            !climbs(i.url_path) && !climbs(&percent_decode(i.url_path)),
            "{:?} answered {file:?}",
            i.url_path
        );
    }
});
