//! The path validator: whatever it accepts stays inside the project, however it is decoded.
#![no_main]

use kiln_fuzz::assert_contained;
use kiln_shared::domain::{file_and_folder, RelativePath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The whole input as one path.
    if let Ok(p) = RelativePath::parse(text) {
        assert_contained(p.as_str());
        let _ = p.extension();
    }
    // Its lines as a tree: a file that is also a folder is found, and only then.
    // (At most 64 lines: the check below is quadratic, and a bigger tree finds nothing new.)
    let accepted: Vec<&str> = text
        .lines()
        .take(64)
        .filter(|l| RelativePath::parse(l).is_ok())
        .collect();
    match file_and_folder(accepted.iter().copied()) {
        Some((file, inner)) => {
            assert!(accepted.contains(&file) && accepted.contains(&inner));
            assert!(inner.starts_with(&format!("{file}/")), "{file} {inner}");
        }
        None => {
            for a in &accepted {
                assert!(
                    !accepted.iter().any(|b| b.starts_with(&format!("{a}/"))),
                    "{a} is a folder of another line"
                );
            }
        }
    }
});
