//! Where a build's output is: the framework from package.json's dependencies (and, for
//! Angular, angular.json), then the usual folders, taking only a folder the build wrote (never
//! a source folder such as Next's `public/`), and refusing, with what to change, an app whose
//! build made a server instead of a static site.
//!
//! One name is recorded per build ([`Output::framework`]): the meta-framework when there is
//! one (`next`, `nuxt`, `astro`, `sveltekit`, `react-router`, `remix`, `angular`,
//! `docusaurus`, `eleventy`, `cra`), else `vite` for any Vite app, whatever its UI library
//! (React, Vue, Svelte, Solid, Preact): the folder and the refusals do not depend on it.

mod angular;
mod frameworks;

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType};

use crate::beneath::{self, BeneathError};

pub use frameworks::framework_of;

/// Folders looked at when package.json does not say.
const SCAN: &[&str] = &["dist", "build", "out", "public"];

/// What a build published: the framework it was detected as, and the output folder, relative
/// to the project (never the project folder itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub framework: Option<&'static str>,
    pub dir: String,
}

/// The project's folder as it is after the build, looked at beneath the folder open at `fd`.
struct Project<'a> {
    fd: BorrowedFd<'a>,
}

impl frameworks::Wrote for Project<'_> {
    fn dir(&self, rel: &str) -> bool {
        match beneath::stat_beneath(self.fd, rel) {
            Ok(stat) => beneath::file_type(&stat) == FileType::Directory,
            Err(BeneathError::LinkOut { .. } | BeneathError::LinkLoop { .. }) => true,
            Err(_) => false,
        }
    }

    fn file(&self, rel: &str) -> bool {
        match beneath::stat_beneath(self.fd, rel) {
            Ok(stat) => beneath::file_type(&stat) == FileType::RegularFile,
            Err(BeneathError::LinkOut { .. } | BeneathError::LinkLoop { .. }) => true,
            Err(_) => false,
        }
    }
}

/// The output folder of a built project (in the project folder open at `project`) and the
/// framework it was detected as, or a message saying why there is none. When the build ran a
/// script (`built_since`: when it started), a folder counts only if the build wrote something
/// in it: a folder that was in the sources and that the build left alone is not its output. A
/// folder that is a symbolic link counts when it leads to a folder inside the project, and
/// also when it leads out of it: opening it then fails the build with a message that says so
/// (see [`beneath::open_dir_beneath`]).
pub fn output_dir(
    project: impl AsFd,
    package_json: &serde_json::Value,
    built_since: Option<SystemTime>,
) -> Result<Output, Refusal> {
    use frameworks::Wrote;
    let project = Project { fd: project.as_fd() };
    let written = |d: &str| built_since.is_none_or(|since| written_since(project.fd, d, since));
    let framework = framework_of(package_json);
    // The framework's own folder; why it could not be told, when it could not.
    let (expected, unsure) = match framework {
        Some(("angular", usual)) => match angular_folder(project.fd) {
            Ok(Some(dir)) => (Some(dir), None),
            Ok(None) => (Some(usual.to_owned()), None),
            Err(why) => (Some(usual.to_owned()), Some(why)),
        },
        Some((_, usual)) => (Some(usual.to_owned()), None),
        None => (None, None),
    };
    if let (Some((name, _)), Some(dir)) = (framework, &expected) {
        if let Some(why) = frameworks::needs_a_server(name, dir, &project) {
            return Err(Refusal::new("needs_server", why));
        }
    }
    // A site's output has a page at its root; a folder a build wrote without one is not a
    // site a preview can open (checked after a build script only: a tree published as it is
    // is whatever its author sent). A link out counts: publishing it then fails and says why.
    let choose = |dir: String| {
        if built_since.is_none() || project.file(&format!("{dir}/index.html")) {
            Ok(Output {
                framework: framework.map(|(name, _)| name),
                dir,
            })
        } else {
            Err(Refusal::new(
                "no_index",
                format!(
                    "the build's output folder {dir}/ has no index.html at its root, so its preview would have no page at /"
                ),
            ))
        }
    };
    if let Some(dir) = &expected {
        if project.dir(dir) && written(dir) {
            return choose(dir.clone());
        }
    }
    let mut untouched = Vec::new();
    for d in SCAN.iter().copied().filter(|d| project.dir(d)) {
        if written(d) {
            return choose(d.to_owned());
        }
        untouched.push(d);
    }
    let expected = match (framework, &expected) {
        (Some((name, _)), Some(dir)) => format!("{dir} (for {name}), "),
        _ => String::new(),
    };
    let mut message = format!(
        "no output folder found after the build: looked for {expected}{}",
        SCAN.join(", ")
    );
    if !untouched.is_empty() {
        message.push_str(&format!(
            "; {} came with the sources and the build wrote nothing in it, so it is not the build's output",
            untouched.join(" and ")
        ));
    }
    if let Some(why) = unsure {
        message.push_str(&format!(" ({why})"));
    }
    Err(Refusal::new("no_output", message))
}

/// The output folder a project's settings name (`settings.outputDir`, relative to the app
/// folder open at `project`) instead of the detected one. A build the framework says made a
/// server is still refused (publishing a folder of it would publish a server's files); the
/// folder must be a folder beneath the app folder (a link out of it is refused), and, when the
/// build ran (`built_since`), one the build wrote, with a page at its root.
pub fn named_output_dir(
    project: impl AsFd,
    package_json: &serde_json::Value,
    dir: &str,
    built_since: Option<SystemTime>,
) -> Result<Output, Refusal> {
    use frameworks::Wrote;
    let project = Project { fd: project.as_fd() };
    let framework = framework_of(package_json);
    if let Some((name, usual)) = framework {
        let usual = match name {
            "angular" => angular_folder(project.fd).ok().flatten(),
            _ => None,
        }
        .unwrap_or_else(|| usual.to_owned());
        if let Some(why) = frameworks::needs_a_server(name, &usual, &project) {
            return Err(Refusal::new(
                "needs_server",
                format!("{why} (settings.outputDir does not change what the build made)"),
            ));
        }
    }
    let no_output = |why: String| Refusal::new("no_output", format!("settings.outputDir {dir}/ {why}"));
    match beneath::open_dir_beneath(project.fd, dir) {
        Ok(_) => {}
        Err(BeneathError::Missing { .. }) => return Err(no_output("does not exist after the build".into())),
        Err(e) => return Err(no_output(format!("is not a folder beneath the app folder: {e}"))),
    }
    if let Some(since) = built_since {
        if !written_since(project.fd, dir, since) {
            return Err(no_output(
                "is not the build's output: the build wrote nothing in it (it came with the sources)".into(),
            ));
        }
        if !project.file(&format!("{dir}/index.html")) {
            return Err(Refusal::new(
                "no_index",
                format!(
                    "the build's output folder {dir}/ (settings.outputDir) has no index.html at its root, so its preview would have no page at /"
                ),
            ));
        }
    }
    Ok(Output {
        framework: framework.map(|(name, _)| name),
        dir: dir.to_owned(),
    })
}

/// Why a build has no output Kiln publishes: Kiln's code for it (`needs_server`, `no_index`,
/// `no_output`) and what to change.
#[derive(Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(code: &'static str, message: String) -> Self {
        Refusal { code, message }
    }
}

impl std::ops::Deref for Refusal {
    type Target = str;
    fn deref(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Debug for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {:?}", self.code, self.message)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl PartialEq<&str> for Refusal {
    fn eq(&self, other: &&str) -> bool {
        self.message == *other
    }
}

/// The folder angular.json says the build writes the site to; `None` when there is no
/// angular.json.
fn angular_folder(project: BorrowedFd<'_>) -> Result<Option<String>, String> {
    match beneath::read_beneath(project, "angular.json", angular::MAX_ANGULAR_JSON) {
        Ok(Some(bytes)) => angular::output_folder(&bytes).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// At most this many entries are looked at to tell whether the build wrote in a folder (the
/// walk stops at the first new one; a folder of more old files than this counts as untouched).
const MAX_ENTRIES: usize = 100_000;

/// Whether anything in folder `rel` of the project (the folder itself, or any entry beneath
/// it, links not followed) was modified or created at or after `since`. A folder that cannot be
/// opened (a link leading out) counts as written, so that publishing it fails and says why.
fn written_since(project: BorrowedFd<'_>, rel: &str, since: SystemTime) -> bool {
    let Ok(top) = beneath::open_dir_beneath(project, rel) else {
        return true;
    };
    let since = since.duration_since(UNIX_EPOCH).unwrap_or_default();
    let new = |stat: &rustix::fs::Stat| {
        let at =
            |secs: i64, nanos: i64| Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32);
        #[allow(clippy::unnecessary_cast)]
        let (m, c) = (
            at(stat.st_mtime as i64, stat.st_mtime_nsec as i64),
            at(stat.st_ctime as i64, stat.st_ctime_nsec as i64),
        );
        m.max(c) >= since
    };
    if rustix::fs::fstat(&top).is_ok_and(|s| new(&s)) {
        return true;
    }
    let mut stack = vec![top];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = rustix::fs::Dir::read_from(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            seen += 1;
            if seen > MAX_ENTRIES {
                return false;
            }
            let Ok(stat) = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            if new(&stat) {
                return true;
            }
            if beneath::file_type(&stat) == FileType::Directory {
                if let Ok(sub) = rustix::fs::openat(
                    &dir,
                    name,
                    rustix::fs::OFlags::RDONLY
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::NOFOLLOW
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                ) {
                    stack.push(sub);
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests;
