//! A build's `pnpm-lock.yaml` as the audit reads it (the project's own file: untrusted), through
//! `kiln_builder::audit::lockfile::read` (saphyr-parser's events underneath). Whatever the bytes:
//! no panic, and every package read has a valid name and a semver version that round-trips
//! through its `name@version` key.
#![no_main]

use kiln_builder::audit::lockfile::read;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(packages) = read(text) else { return };
    for p in packages {
        assert!(!p.name.is_empty() && p.name.len() <= 214, "{p:?}");
        assert!(
            p.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"@/._-~".contains(&b)),
            "{p:?}"
        );
        let key = format!("packages:\n  '{}@{}': {{}}\n", p.name, p.version);
        let again = read(&key).expect("a key Kiln read parses again");
        assert!(again.contains(&p), "{p:?} from {key:?}");
    }
});
