//! What every fuzz target checks of a path Kiln accepted.

use std::path::{Component, Path};

use kiln_shared::domain::RelativePath;

/// A path Kiln accepted stays inside any folder it is joined onto, parses to itself again, and
/// means the same once percent-decoded (no new `.`, `/` or `\`: a later decoder cannot turn it
/// into a traversal).
pub fn assert_contained(path: &str) {
    let root = Path::new("/workspace/project");
    let joined = root.join(path);
    assert!(joined.starts_with(root), "{path:?} leaves the root");
    assert!(
        joined
            .strip_prefix(root)
            .expect("under the root")
            .components()
            .all(|c| matches!(c, Component::Normal(_))),
        "{path:?} has a component that is not a name"
    );
    assert_eq!(
        RelativePath::parse(path)
            .map(|p| p.as_str().to_owned())
            .as_deref(),
        Ok(path)
    );
    let decoded = percent_decode(path);
    assert!(
        !decoded.split('/').any(|s| s == ".." || s == "." || s.is_empty())
            && !decoded.contains('\\')
            && !decoded.contains('\0')
            && decoded.matches('/').count() == path.matches('/').count(),
        "{path:?} decodes to {decoded:?}"
    );
}

/// One round of `%XX` decoding (lossy), as a server would do. `XX` is two hex digits: a
/// decoder that takes `%+0` for NUL (`from_str_radix` accepts a sign) is broken, and this target's
/// first runs found the preview server's own decoder was one.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3))
            .flatten()
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
