//! Processes, read from /proc: which ones belong to a build (by the workspace the builder gave
//! them: their `HOME` is `<work dir>/<build id>-<secret>/home`, their working folder is under
//! `<work dir>/<build id>-<secret>/`), and whether one is still alive.

use std::path::Path;

/// A live process that belongs to a build's workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub cmdline: String,
}

impl std::fmt::Display for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.pid, self.cmdline)
    }
}

/// True when `pid` runs (a zombie counts as dead: it runs nothing any more).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// The live processes whose `HOME` or working folder is under `dir`.
pub fn under(dir: &Path) -> Vec<Proc> {
    matching(|path| path.starts_with(dir))
}

/// The live processes of build `id` in `work_dir`: under a workspace named `<id>-<secret>`.
pub fn of_build(work_dir: &Path, id: &str) -> Vec<Proc> {
    let prefix = format!("{id}-");
    matching(|path| {
        path.strip_prefix(work_dir).is_ok_and(|rest| {
            rest.components()
                .next()
                .is_some_and(|c| c.as_os_str().to_string_lossy().starts_with(&prefix))
        })
    })
}

/// The live processes whose `HOME` or working folder `inside` accepts.
fn matching(inside: impl Fn(&Path) -> bool) -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if !alive(pid) {
            continue;
        }
        let base = entry.path();
        let home_inside = std::fs::read(base.join("environ")).is_ok_and(|env| {
            env.split(|b| *b == 0)
                .filter_map(|kv| kv.strip_prefix(b"HOME="))
                .any(|home| inside(Path::new(&*String::from_utf8_lossy(home))))
        });
        let cwd_inside = std::fs::read_link(base.join("cwd")).is_ok_and(|cwd| inside(&cwd));
        if home_inside || cwd_inside {
            let cmdline = std::fs::read(base.join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim().to_owned())
                .unwrap_or_default();
            found.push(Proc { pid, cmdline });
        }
    }
    found.sort_by_key(|p| p.pid);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_child_by_its_working_folder_and_sees_it_die() {
        let dir = std::env::temp_dir().join(format!("kiln-chaos-procs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(&dir)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert!(alive(pid));
        assert!(under(&dir).iter().any(|p| p.pid == pid), "{:?}", under(&dir));
        assert!(under(&dir.join("elsewhere")).is_empty());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!alive(pid));
        assert!(under(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
