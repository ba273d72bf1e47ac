//! `POST /v1/builds`' body → a parsed, checked build request (or a 4xx saying why not).
#![no_main]

use std::collections::HashSet;

use kiln_api::untrusted;
use kiln_fuzz::assert_contained;
use kiln_shared::domain::{file_and_folder, FileLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let limits = FileLimits {
        max_files: 64,
        max_file_bytes: 4096,
    };
    match untrusted::build_request(body, limits) {
        Ok(req) => {
            if let Some(files) = &req.files {
                assert!(files.len() <= limits.max_files);
                let mut seen = HashSet::new();
                for f in files {
                    assert!(f.content.len() <= limits.max_file_bytes);
                    assert!(seen.insert(f.path.as_str()), "{} twice", f.path);
                    assert_contained(f.path.as_str());
                }
                assert_eq!(file_and_folder(files.iter().map(|f| f.path.as_str())), None);
            }
            for d in &req.deleted {
                assert_contained(d.as_str());
            }
        }
        Err(e) => assert!(untrusted::is_client_error(&e), "{e:?} is not a 4xx"),
    }
});
