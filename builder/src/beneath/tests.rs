//! Tests of [`super`]: links out, special files and oversized ones refused, links that
//! stay inside followed, writes through no link.

use std::os::unix::fs::symlink;
use std::time::Duration;

use super::*;

fn dir_fd(path: &Path) -> OwnedFd {
    rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap()
}

/// A project folder inside a workspace folder, with `secret.txt` beside the project.
fn workspace() -> (tempfile::TempDir, PathBuf) {
    let ws = tempfile::tempdir().unwrap();
    let project = ws.path().join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(ws.path().join("secret.txt"), "secret").unwrap();
    (ws, project)
}

/// Runs `f` on another thread and fails the test if it has not returned in 10 s (a FIFO
/// opened the wrong way blocks forever).
fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("did not return within 10 s: it blocked")
}

#[test]
fn reads_regular_files_and_says_when_one_is_absent() {
    let (_ws, project) = workspace();
    std::fs::create_dir(project.join("sub")).unwrap();
    std::fs::write(project.join("sub/a.txt"), "hello").unwrap();
    let fd = dir_fd(&project);
    assert_eq!(read_beneath(&fd, "sub/a.txt", 100).unwrap().unwrap(), b"hello");
    assert!(read_beneath(&fd, "nothing.txt", 100).unwrap().is_none());
    // Exactly at the bound is fine.
    assert_eq!(read_beneath(&fd, "sub/a.txt", 5).unwrap().unwrap(), b"hello");
}

#[test]
fn links_that_leave_are_refused_and_links_inside_are_followed() {
    let (_ws, project) = workspace();
    std::fs::write(project.join("index.html"), "<h1>hi</h1>").unwrap();
    std::fs::create_dir(project.join("deep")).unwrap();
    symlink("/etc/passwd", project.join("passwd")).unwrap();
    symlink("/proc/self/environ", project.join("pnpm-lock.yaml")).unwrap();
    symlink("../../secret.txt", project.join("deep/up")).unwrap();
    symlink("../secret.txt", project.join("up")).unwrap();
    symlink("../index.html", project.join("deep/inside.html")).unwrap();
    let fd = dir_fd(&project);

    for (rel, path) in [
        ("passwd", "passwd"),
        ("pnpm-lock.yaml", "pnpm-lock.yaml"),
        ("deep/up", "deep/up"),
        ("up", "up"),
    ] {
        let err = read_beneath(&fd, rel, 1 << 20).unwrap_err();
        assert!(matches!(&err, BeneathError::LinkOut { .. }), "{rel}: {err:?}");
        assert_eq!(
            err.to_string(),
            format!("{path} is a symbolic link that leaves the project")
        );
        assert!(err.is_refusal());
    }
    assert_eq!(
        read_beneath(&fd, "deep/inside.html", 100).unwrap().unwrap(),
        b"<h1>hi</h1>"
    );
    // An absolute path is no way out either.
    assert!(read_beneath(&fd, "/etc/passwd", 1 << 20).is_err());
}

#[test]
fn a_link_into_proc_is_refused() {
    let (_ws, project) = workspace();
    let fd = dir_fd(&project);
    // Inside the folder, a link to a folder that holds /proc's magic links.
    symlink("/proc/self", project.join("me")).unwrap();
    let err = read_beneath(&fd, "me/environ", 1 << 20).unwrap_err();
    assert!(matches!(err, BeneathError::LinkOut { .. }), "{err:?}");
}

#[test]
fn a_fifo_is_refused_at_once() {
    let (_ws, project) = workspace();
    nix::unistd::mkfifo(
        &project.join("pnpm-lock.yaml"),
        nix::sys::stat::Mode::from_bits_truncate(0o666),
    )
    .unwrap();
    let err = promptly(move || {
        let fd = dir_fd(&project);
        read_beneath(&fd, "pnpm-lock.yaml", 1 << 20).unwrap_err()
    });
    assert_eq!(err.to_string(), "pnpm-lock.yaml is not a regular file (a FIFO)");
}

#[test]
fn a_device_a_folder_and_a_socket_are_not_read() {
    let (_ws, project) = workspace();
    std::fs::create_dir(project.join("package.json")).unwrap();
    symlink("/dev/zero", project.join("zero")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(project.join("sock")).unwrap();
    let fd = dir_fd(&project);
    assert_eq!(
        read_beneath(&fd, "package.json", 1 << 20)
            .unwrap_err()
            .to_string(),
        "package.json is not a regular file (a folder)"
    );
    // A link to a device leaves the folder; the socket cannot even be opened.
    assert!(matches!(
        read_beneath(&fd, "zero", 1 << 20).unwrap_err(),
        BeneathError::LinkOut { .. }
    ));
    assert_eq!(
        read_beneath(&fd, "sock", 1 << 20).unwrap_err().to_string(),
        "sock is not a regular file (a socket)"
    );
}

#[test]
fn a_file_over_the_bound_is_refused_and_not_read_whole() {
    let (_ws, project) = workspace();
    std::fs::write(project.join("pnpm-lock.yaml"), vec![b'x'; 3 * 1024 * 1024]).unwrap();
    std::fs::write(project.join("small"), vec![b'x'; 11]).unwrap();
    let fd = dir_fd(&project);
    assert_eq!(
        read_beneath(&fd, "pnpm-lock.yaml", 2 * 1024 * 1024)
            .unwrap_err()
            .to_string(),
        "pnpm-lock.yaml is larger than 2 MB"
    );
    assert_eq!(
        read_beneath(&fd, "small", 10).unwrap_err().to_string(),
        "small is larger than 10 bytes"
    );
}

#[test]
fn open_dir_does_not_follow_a_link_where_the_project_was() {
    let (ws, project) = workspace();
    assert!(open_dir(ws.path(), "project").is_ok());
    std::fs::remove_dir(&project).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    symlink(elsewhere.path(), &project).unwrap();
    let err = open_dir(ws.path(), "project").unwrap_err();
    assert!(matches!(err, BeneathError::Link { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "project is a symbolic link, which Kiln does not follow here"
    );
    std::fs::remove_file(&project).unwrap();
    std::fs::write(&project, "").unwrap();
    assert_eq!(
        open_dir(ws.path(), "project").unwrap_err().to_string(),
        "project is not a folder (a regular file)"
    );
    assert!(open_dir(ws.path(), "../x").is_err());
    assert!(open_dir(ws.path(), "a/b").is_err());
}

#[test]
fn open_dir_beneath_follows_links_inside_only() {
    let (ws, project) = workspace();
    std::fs::create_dir_all(project.join("build/out")).unwrap();
    std::fs::write(project.join("build/out/index.html"), "x").unwrap();
    symlink("build/out", project.join("dist")).unwrap();
    symlink("/root", project.join("out")).unwrap();
    symlink("../../", project.join("public")).unwrap();
    std::fs::create_dir(ws.path().join("other")).unwrap();
    symlink("../other", project.join("up")).unwrap();
    let fd = dir_fd(&project);
    let dist = open_dir_beneath(&fd, "dist").unwrap();
    assert_eq!(read_beneath(&dist, "index.html", 10).unwrap().unwrap(), b"x");
    for name in ["out", "public", "up"] {
        let err = open_dir_beneath(&fd, name).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{name} is a symbolic link that leaves the project")
        );
    }
    assert_eq!(
        open_dir_beneath(&fd, "build/out/index.html")
            .unwrap_err()
            .to_string(),
        "build/out/index.html is not a folder (a regular file)"
    );
    assert!(matches!(
        open_dir_beneath(&fd, "nothing").unwrap_err(),
        BeneathError::Missing { .. }
    ));
}

#[test]
fn writes_make_folders_and_follow_no_link() {
    let (ws, project) = workspace();
    let fd = dir_fd(&project);
    write_beneath(&fd, "src/deep/App.tsx", b"export {}", None).unwrap();
    assert_eq!(
        std::fs::read(project.join("src/deep/App.tsx")).unwrap(),
        b"export {}"
    );
    // Replacing a file replaces it.
    write_beneath(&fd, "src/deep/App.tsx", b"v2", None).unwrap();
    assert_eq!(std::fs::read(project.join("src/deep/App.tsx")).unwrap(), b"v2");

    // A folder on the way replaced by a link (to outside, or even inside): refused.
    let outside = ws.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::remove_dir_all(project.join("src/deep")).unwrap();
    symlink(&outside, project.join("src/deep")).unwrap();
    let err = write_beneath(&fd, "src/deep/App.tsx", b"pwned", None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "src/deep is a symbolic link, which Kiln does not follow here"
    );
    std::fs::create_dir(project.join("lib")).unwrap();
    symlink("lib", project.join("alias")).unwrap();
    assert!(matches!(
        write_beneath(&fd, "alias/x.js", b"", None).unwrap_err(),
        BeneathError::Link { .. }
    ));
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());

    // The file itself a link: refused, the target untouched.
    symlink(ws.path().join("secret.txt"), project.join("index.html")).unwrap();
    assert_eq!(
        write_beneath(&fd, "index.html", b"pwned", None)
            .unwrap_err()
            .to_string(),
        "index.html is a symbolic link, which Kiln does not follow here"
    );
    assert_eq!(std::fs::read(ws.path().join("secret.txt")).unwrap(), b"secret");

    // A hard link to a file outside is replaced, not written through.
    std::fs::hard_link(ws.path().join("secret.txt"), project.join("hard.txt")).unwrap();
    write_beneath(&fd, "hard.txt", b"mine", None).unwrap();
    assert_eq!(std::fs::read(project.join("hard.txt")).unwrap(), b"mine");
    assert_eq!(std::fs::read(ws.path().join("secret.txt")).unwrap(), b"secret");

    // A FIFO where the file goes: refused at once, not waited on.
    nix::unistd::mkfifo(
        &project.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o666),
    )
    .unwrap();
    let err = promptly(move || write_beneath(dir_fd(&project), "fifo", b"x", None).unwrap_err());
    assert_eq!(err.to_string(), "fifo is not a regular file (a FIFO)");

    // Paths that are no plain names.
    assert!(write_beneath(&fd, "../escape", b"", None).is_err());
    assert!(write_beneath(&fd, "/tmp/escape", b"", None).is_err());
    assert!(!ws.path().join("escape").exists());
}

#[test]
fn written_files_and_made_folders_belong_to_the_owner() {
    use std::os::unix::fs::MetadataExt;
    let (_ws, project) = workspace();
    let fd = dir_fd(&project);
    if !nix::unistd::geteuid().is_root() {
        return; // only root can give files away
    }
    write_beneath(&fd, "a/b/c.txt", b"x", Some((4242, 4343))).unwrap();
    for path in ["a", "a/b", "a/b/c.txt"] {
        let meta = std::fs::symlink_metadata(project.join(path)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (4242, 4343), "{path}");
    }
}

#[test]
fn a_folder_opened_through_no_link_refuses_every_link_on_the_way() {
    let (_ws, project) = workspace();
    std::fs::create_dir_all(project.join("apps/web")).unwrap();
    std::fs::write(project.join("apps/file"), "x").unwrap();
    symlink("web", project.join("apps/inside")).unwrap();
    symlink("apps", project.join("linked")).unwrap();
    symlink("..", project.join("apps/up")).unwrap();
    let fd = dir_fd(&project);
    assert!(open_dir_through_no_link(&fd, "apps/web").is_ok());
    for (rel, link) in [
        ("apps/inside", true),
        ("linked/web", true),
        ("apps/up", true),
        ("apps/missing", false),
        ("apps/file", false),
    ] {
        let err = open_dir_through_no_link(&fd, rel).unwrap_err();
        assert_eq!(matches!(err, BeneathError::Link { .. }), link, "{rel}: {err:?}");
        assert!(err.is_refusal(), "{rel}: {err:?}");
    }
    assert!(matches!(
        open_dir_through_no_link(&fd, "apps/file").unwrap_err(),
        BeneathError::NotDir { .. }
    ));
    assert!(open_dir_through_no_link(&fd, "../project").is_err());
}
