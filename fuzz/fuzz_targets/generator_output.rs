//! The generator's JSON output contract (untrusted: an AI wrote it), as the builder reads it:
//! the files it names are checked like a request's.
#![no_main]

use kiln_fuzz::assert_contained;
use kiln_shared::domain::{FileLimits, GeneratorOutput, SourceFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(output) = serde_json::from_slice::<GeneratorOutput>(data) else {
        return;
    };
    let _ = output.metadata_json();
    let limits = FileLimits {
        max_files: 64,
        max_file_bytes: 4096,
    };
    if let Ok(files) = SourceFile::parse_all(&output.merged_files(), limits) {
        for f in &files {
            assert_contained(f.path.as_str());
        }
    }
});
