//! Finding a program as a shell would: the first executable file of that name in the folders
//! of a `PATH` value. The sandbox finds its tools (bubblewrap, `prlimit`, `setpriv`) in the
//! system's folders ([`SYSTEM_PATH`]); a step finds its program, and an install the `node` of
//! its egress bridge, on the step's own `PATH`. A leaf: it depends on nothing of the crate's.

use std::path::{Path, PathBuf};

/// The system's folders, where the daemon looks for the tools that confine builds.
pub const SYSTEM_PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin";

/// The first executable `program` in the folders of `path` (a `PATH` value).
pub fn find_on_path(path: &str, program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
