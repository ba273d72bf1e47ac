//! Where a build's output is: from package.json's dependencies first, then the usual folders.

use std::os::fd::AsFd;

use rustix::fs::FileType;

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
/// a message saying where Kiln looked. A folder that is a symbolic link counts when it leads to
/// a folder inside the project, and also when it leads out of it: opening it then fails the
/// build with a message that says so (see [`beneath::open_dir_beneath`]).
pub fn output_dir(project: impl AsFd, package_json: &serde_json::Value) -> Result<&'static str, String> {
    let project = project.as_fd();
    let is_dir = |d: &str| match beneath::stat_beneath(project, d) {
        Ok(stat) => beneath::file_type(&stat) == FileType::Directory,
        Err(BeneathError::LinkOut { .. } | BeneathError::LinkLoop { .. }) => true,
        Err(_) => false,
    };
    if let Some((_, dir)) = framework_of(package_json) {
        if is_dir(dir) {
            return Ok(dir);
        }
    }
    SCAN.iter().copied().find(|d| is_dir(d)).ok_or_else(|| {
        let expected = framework_of(package_json)
            .map(|(name, dir)| format!("{dir} (for {name}), "))
            .unwrap_or_default();
        format!(
            "no output folder found after the build: looked for {expected}{}",
            SCAN.join(", ")
        )
    })
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
        let err = output_dir(&fd, &vite).unwrap_err();
        assert_eq!(
            err,
            "no output folder found after the build: looked for dist (for vite), dist, build, out, public"
        );
        std::fs::create_dir(dir.path().join("public")).unwrap();
        assert_eq!(output_dir(&fd, &vite).unwrap(), "public");
        std::fs::create_dir(dir.path().join("dist")).unwrap();
        assert_eq!(output_dir(&fd, &vite).unwrap(), "dist");
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
        assert!(output_dir(&fd, &none).is_err());
        // A link to a folder inside is one.
        symlink("site", project.join("out")).unwrap();
        assert_eq!(output_dir(&fd, &none).unwrap(), "out");
        // A link out is found, so that opening it fails and says why.
        std::fs::remove_file(project.join("build")).unwrap();
        symlink("/root", project.join("build")).unwrap();
        assert_eq!(output_dir(&fd, &none).unwrap(), "build");
        assert_eq!(
            beneath::open_dir_beneath(&fd, "build").unwrap_err().to_string(),
            "build is a symbolic link that leaves the project"
        );
    }
}
