//! The files `kiln submit` uploads from a project folder, walked with the `ignore` crate (the
//! walker of ripgrep): what `.gitignore` (even outside a git repository), `.ignore` and
//! `.kilnignore` leave out is not sent, and neither are, whatever those files say:
//!
//! - `.env.local` and `.env.*.local`: the local secrets of Vite, Next.js and others, which a
//!   build must not store (sources are kept and downloadable). Other `.env` files (`.env`,
//!   `.env.production`) are sent: those frameworks commit them, and the build reads them;
//! - `.git*` (the repository and its files), the link folder `.kiln/`;
//! - `node_modules` and build output folders (`dist`, `build`, `out`, `.next`, `.svelte-kit`).
//!
//! Other hidden files (`.npmrc`, `.nvmrc`...) are sent, as before. Symbolic links are not.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use ignore::overrides::OverrideBuilder;
use ignore::WalkBuilder;
use kiln_shared::domain::{FileEncoding, FileInput};

/// Folders never sent, at any depth.
const SKIPPED_DIRS: &[&str] = &[
    "node_modules",
    "dist",
    "build",
    "out",
    ".next",
    ".svelte-kit",
    crate::link::DIR,
];

/// Files never sent, whatever the ignore files say (globs, at any depth).
const SKIPPED_FILES: &[&str] = &[".env.local", ".env.*.local"];

/// The ignore file of Kiln's own, read like `.gitignore`.
pub(crate) const KILNIGNORE: &str = ".kilnignore";

/// The files of `root` as the API takes them (UTF-8 as text, anything else as base64), by path.
pub(crate) fn collect(root: &Path) -> anyhow::Result<Vec<FileInput>> {
    let mut never = OverrideBuilder::new(root);
    for glob in SKIPPED_FILES {
        never.add(&format!("!{glob}"))?;
    }
    let never = never.build()?;
    let walk = WalkBuilder::new(root)
        .hidden(false)
        .git_global(false)
        .require_git(false)
        .add_custom_ignore_filename(KILNIGNORE)
        .overrides(never)
        .follow_links(false)
        .filter_entry(|entry| {
            let name = entry.file_name().to_string_lossy();
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            entry.depth() == 0
                || !(name.starts_with(".git") || (is_dir && SKIPPED_DIRS.contains(&name.as_ref())))
        })
        .build();
    let mut out = Vec::new();
    for entry in walk {
        let entry = entry.with_context(|| format!("reading {}", root.display()))?;
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("entries are under the root")
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        let bytes =
            std::fs::read(entry.path()).with_context(|| format!("reading {}", entry.path().display()))?;
        let (content, encoding) = match String::from_utf8(bytes) {
            Ok(text) => (text, FileEncoding::Utf8),
            Err(e) => (
                base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
                FileEncoding::Base64,
            ),
        };
        out.push(FileInput {
            path: rel,
            content,
            encoding,
            kind: None,
            mode: None,
            target: None,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn ignore_files_and_local_env_files_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for path in [
            "index.html",
            "src/main.js",
            ".env",
            ".env.production",
            ".env.local",
            ".env.production.local",
            "app/.env.local",
            ".npmrc",
            ".gitignore",
            ".git/config",
            "node_modules/x/index.js",
            "dist/index.html",
            "src/build/keep.js",
            "drafts/note.md",
            "secret.key",
            "tmp.log",
            ".kiln/project.toml",
        ] {
            write(root, path, "x");
        }
        write(root, ".gitignore", "*.log\n");
        write(root, ".ignore", "drafts/\n");
        write(root, KILNIGNORE, "secret.key\n");
        std::fs::write(root.join("logo.bin"), [0xff, 0x00, 0xfe]).unwrap();
        let files = collect(root).unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".env",
                ".env.production",
                ".ignore",
                ".kilnignore",
                ".npmrc",
                "index.html",
                "logo.bin",
                "src/main.js",
            ]
        );
        let logo = files.iter().find(|f| f.path == "logo.bin").unwrap();
        assert_eq!(logo.encoding, FileEncoding::Base64);
    }
}
