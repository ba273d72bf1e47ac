//! Where a build's output is: from package.json's dependencies first, then the usual folders,
//! taking only a folder the build wrote (never a source folder such as Next's `public/`), and
//! refusing, with what to change, an app whose build made a server instead of a static site.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType};

use crate::beneath::{self, BeneathError};

/// Folders looked at when package.json does not say.
const SCAN: &[&str] = &["dist", "build", "out", "public"];

/// The framework a package.json uses, and the folder its static build goes to.
pub fn framework_of(package_json: &serde_json::Value) -> Option<(&'static str, &'static str)> {
    let has = |name: &str| {
        ["dependencies", "devDependencies"]
            .iter()
            .any(|section| package_json.get(section).and_then(|d| d.get(name)).is_some())
    };
    // Most specific first: a Next or Astro project may also depend on vite or react.
    const KNOWN: &[(&str, &str, &str)] = &[
        ("next", "next", "out"),
        ("astro", "astro", "dist"),
        ("@sveltejs/kit", "sveltekit", "build"),
        ("react-scripts", "cra", "build"),
        ("vite", "vite", "dist"),
    ];
    KNOWN
        .iter()
        .find(|(dep, _, _)| has(dep))
        .map(|(_, name, dir)| (*name, *dir))
}

/// The output folder of a built project (a name in the project folder open at `project`), or
/// a message saying why there is none. When the build ran a script (`built_since`: when it
/// started), a folder counts only if the build wrote something in it: a folder that was in the
/// sources and that the build left alone is not its output. A folder that is a symbolic link
/// counts when it leads to a folder inside the project, and also when it leads out of it:
/// opening it then fails the build with a message that says so (see
/// [`beneath::open_dir_beneath`]).
pub fn output_dir(
    project: impl AsFd,
    package_json: &serde_json::Value,
    built_since: Option<SystemTime>,
) -> Result<&'static str, String> {
    let project = project.as_fd();
    let is_dir = |d: &str| match beneath::stat_beneath(project, d) {
        Ok(stat) => beneath::file_type(&stat) == FileType::Directory,
        Err(BeneathError::LinkOut { .. } | BeneathError::LinkLoop { .. }) => true,
        Err(_) => false,
    };
    let written = |d: &str| built_since.is_none_or(|since| written_since(project, d, since));
    let framework = framework_of(package_json);
    if let Some(why) = needs_a_server(framework.map(|(name, _)| name), &is_dir) {
        return Err(why);
    }
    // A site's output has a page at its root; a folder a build wrote without one is not a
    // site a preview can open (checked after a build script only: a tree published as it is
    // is whatever its author sent).
    let has_index = |d: &str| {
        // A link out counts: publishing it then fails and says why.
        built_since.is_none()
            || match beneath::stat_beneath(project, format!("{d}/index.html")) {
                Ok(stat) => beneath::file_type(&stat) == FileType::RegularFile,
                Err(BeneathError::LinkOut { .. } | BeneathError::LinkLoop { .. }) => true,
                Err(_) => false,
            }
    };
    let choose = |d: &'static str| {
        if has_index(d) {
            Ok(d)
        } else {
            Err(format!(
                "the build's output folder {d}/ has no index.html at its root, so its preview would have no page at /"
            ))
        }
    };
    if let Some((_, dir)) = framework {
        if is_dir(dir) && written(dir) {
            return choose(dir);
        }
    }
    let mut untouched = Vec::new();
    for d in SCAN.iter().copied().filter(|d| is_dir(d)) {
        if written(d) {
            return choose(d);
        }
        untouched.push(d);
    }
    let expected = framework
        .map(|(name, dir)| format!("{dir} (for {name}), "))
        .unwrap_or_default();
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
    Err(message)
}

/// Why the build's output needs a server, when what it wrote says so: what to change for a
/// static preview.
fn needs_a_server(framework: Option<&str>, is_dir: &dyn Fn(&str) -> bool) -> Option<String> {
    match framework {
        Some("next") if is_dir(".next") && !is_dir("out") => Some(
            "this Next.js app needs a server: `next build` wrote .next/ and no out/; set \
             `output: 'export'` in next.config.js (or .mjs/.ts) for a static preview"
                .to_owned(),
        ),
        Some("sveltekit") if is_dir(".svelte-kit/output/server") && !is_dir("build") => Some(
            "this SvelteKit app needs a server: its adapter (adapter-auto by default) wrote no \
             build/; use @sveltejs/adapter-static in svelte.config.js for a static preview"
                .to_owned(),
        ),
        Some("astro") if is_dir("dist/server") => Some(
            "this Astro app renders on a server (`output: 'server'` with an adapter wrote \
             dist/server/); set `output: 'static'` in astro.config.mjs for a static preview"
                .to_owned(),
        ),
        _ => None,
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
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frameworks_and_their_folders() {
        let vite = json!({"devDependencies": {"vite": "^6", "react": "19"}});
        assert_eq!(framework_of(&vite), Some(("vite", "dist")));
        let next = json!({"dependencies": {"next": "15", "react": "19"}, "devDependencies": {"vite": "1"}});
        assert_eq!(framework_of(&next), Some(("next", "out")));
        assert_eq!(
            framework_of(&json!({"dependencies": {"react-scripts": "5"}})),
            Some(("cra", "build"))
        );
        assert_eq!(framework_of(&json!({})), None);
    }

    fn open(path: &std::path::Path) -> std::os::fd::OwnedFd {
        use rustix::fs::{Mode, OFlags};
        rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    #[test]
    fn falls_back_to_scanning_then_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open(dir.path());
        let vite = json!({"devDependencies": {"vite": "6"}});
        let err = output_dir(&fd, &vite, None).unwrap_err();
        assert_eq!(
            err,
            "no output folder found after the build: looked for dist (for vite), dist, build, out, public"
        );
        std::fs::create_dir(dir.path().join("public")).unwrap();
        assert_eq!(output_dir(&fd, &vite, None).unwrap(), "public");
        std::fs::create_dir(dir.path().join("dist")).unwrap();
        assert_eq!(output_dir(&fd, &vite, None).unwrap(), "dist");
    }

    #[test]
    fn a_linked_folder_counts_when_it_leads_to_a_folder_or_out() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("project");
        std::fs::create_dir_all(project.join("site")).unwrap();
        std::fs::write(project.join("index.html"), "x").unwrap();
        let fd = open(&project);
        let none = json!({});
        // A link to a file, or to nothing, is no output folder.
        symlink("index.html", project.join("dist")).unwrap();
        symlink("nothing", project.join("build")).unwrap();
        assert!(output_dir(&fd, &none, None).is_err());
        // A link to a folder inside is one.
        symlink("site", project.join("out")).unwrap();
        assert_eq!(output_dir(&fd, &none, None).unwrap(), "out");
        // A link out is found, so that opening it fails and says why.
        std::fs::remove_file(project.join("build")).unwrap();
        symlink("/root", project.join("build")).unwrap();
        assert_eq!(output_dir(&fd, &none, None).unwrap(), "build");
        assert_eq!(
            beneath::open_dir_beneath(&fd, "build").unwrap_err().to_string(),
            "build is a symbolic link that leaves the project"
        );
    }

    /// A moment after everything made so far, and before anything made next (file times come
    /// from the kernel's coarse clock, a few milliseconds behind `SystemTime::now`).
    fn a_moment() -> SystemTime {
        std::thread::sleep(Duration::from_millis(30));
        let t = SystemTime::now();
        std::thread::sleep(Duration::from_millis(30));
        t
    }

    #[test]
    fn a_source_folder_the_build_did_not_write_is_not_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open(dir.path());
        let vite = json!({"devDependencies": {"vite": "6"}});
        // The sources have public/ (Vite copies it into dist/); the build wrote nothing.
        std::fs::create_dir_all(dir.path().join("public/img")).unwrap();
        std::fs::write(dir.path().join("public/img/logo.svg"), "<svg/>").unwrap();
        let since = a_moment();
        let err = output_dir(&fd, &vite, Some(since)).unwrap_err();
        assert!(
            err.ends_with("; public came with the sources and the build wrote nothing in it, so it is not the build's output"),
            "{err}"
        );
        // Without a build script, the sources are the site: public/ is published as it is.
        assert_eq!(output_dir(&fd, &vite, None).unwrap(), "public");
        // The build writes dist/: that is the output, once it has a page at its root.
        std::fs::create_dir(dir.path().join("dist")).unwrap();
        assert_eq!(
            output_dir(&fd, &vite, Some(since)).unwrap_err(),
            "the build's output folder dist/ has no index.html at its root, so its preview would have no page at /"
        );
        std::fs::write(dir.path().join("dist/index.html"), "<h1>hi</h1>").unwrap();
        assert_eq!(output_dir(&fd, &vite, Some(since)).unwrap(), "dist");
    }

    #[test]
    fn a_committed_output_folder_counts_once_the_build_writes_in_it_at_any_depth() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open(dir.path());
        let none = json!({});
        std::fs::create_dir_all(dir.path().join("build/assets/js")).unwrap();
        std::fs::write(dir.path().join("build/assets/js/app.js"), "old").unwrap();
        std::fs::write(dir.path().join("build/index.html"), "old").unwrap();
        let since = a_moment();
        assert!(output_dir(&fd, &none, Some(since)).is_err());
        // Rewriting one nested file in place changes no folder's time: found all the same.
        std::fs::write(dir.path().join("build/assets/js/app.js"), "new").unwrap();
        assert_eq!(output_dir(&fd, &none, Some(since)).unwrap(), "build");
    }

    #[test]
    fn an_app_whose_build_made_a_server_is_refused_with_what_to_change() {
        let dir = tempfile::tempdir().unwrap();
        let fd = open(dir.path());
        // A default Next.js app: public/ in the sources, `next build` writes .next/ only.
        let next = json!({"dependencies": {"next": "15", "react": "19"}, "scripts": {"build": "next build"}});
        std::fs::create_dir(dir.path().join("public")).unwrap();
        std::fs::write(dir.path().join("public/favicon.ico"), "x").unwrap();
        let since = a_moment();
        std::fs::create_dir_all(dir.path().join(".next/server/app")).unwrap();
        let err = output_dir(&fd, &next, Some(since)).unwrap_err();
        assert!(err.starts_with("this Next.js app needs a server"), "{err}");
        assert!(err.contains("output: 'export'"), "{err}");
        // With `output: 'export'`, next build also writes out/.
        std::fs::create_dir(dir.path().join("out")).unwrap();
        std::fs::write(dir.path().join("out/index.html"), "<h1>hi</h1>").unwrap();
        assert_eq!(output_dir(&fd, &next, Some(since)).unwrap(), "out");

        let dir = tempfile::tempdir().unwrap();
        let fd = open(dir.path());
        let kit = json!({"devDependencies": {"@sveltejs/kit": "2"}});
        std::fs::create_dir_all(dir.path().join(".svelte-kit/output/server")).unwrap();
        let err = output_dir(&fd, &kit, Some(SystemTime::UNIX_EPOCH)).unwrap_err();
        assert!(err.contains("adapter-static"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let fd = open(dir.path());
        let astro = json!({"dependencies": {"astro": "5"}});
        std::fs::create_dir_all(dir.path().join("dist/server")).unwrap();
        std::fs::create_dir_all(dir.path().join("dist/client")).unwrap();
        let err = output_dir(&fd, &astro, Some(SystemTime::UNIX_EPOCH)).unwrap_err();
        assert!(err.contains("output: 'static'"), "{err}");
    }
}
