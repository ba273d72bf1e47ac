//! Tests of [`super`]: the stub's command line, and installs started warm and cold in the
//! sandbox for real, one that died falling back cold.

use super::*;
use crate::process::{run_capturing, Invocation, StepEnv};
use crate::sandbox::Cell;

/// Runs `line` as the stub does, with `sh -s`, and returns what it printed.
fn through_sh(line: &str) -> String {
    let out = std::process::Command::new("/bin/sh")
        .args(["-s"])
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(line.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_command_line_passes_every_word_and_variable_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("it's a $HOME `x` \\ \"dir\"");
    std::fs::create_dir(&odd).unwrap();
    let env = vec![
        ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
        ("TRICKY".to_owned(), "a'b $(echo no) `no` \\n ;exit 3".to_owned()),
    ];
    let args = [
        "-c",
        r#"printf '%s|' "$TRICKY" "$PWD" "$1" "$2"; printf '%s' "$(cat)""#,
        "sh",
        "one 'two'",
        "$three",
    ];
    let line = command_line(&env, &odd, Path::new("/bin/sh"), &args).unwrap();
    assert_eq!(
        through_sh(&line),
        format!(
            "a'b $(echo no) `no` \\n ;exit 3|{}|one 'two'|$three|",
            odd.display()
        ),
        "the variable, the folder and the words arrive untouched; stdin is /dev/null"
    );
    // Only the given variables (the stub's own environment was empty).
    let env_only = command_line(&env, &odd, Path::new("/usr/bin/env"), &[]).unwrap();
    let printed = through_sh(&env_only);
    let mut names: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["PATH", "TRICKY"]);

    // What cannot be one line is refused (the install then starts cold).
    assert!(command_line(&env, &odd, Path::new("/bin/sh"), &["a\nb"]).is_none());
    let bad_name = vec![("A B".to_owned(), "x".to_owned())];
    assert!(command_line(&bad_name, &odd, Path::new("/bin/sh"), &[]).is_none());

    // A line cut short anywhere before its closing brace (the daemon died while sending
    // it) runs nothing.
    let marker = dir.path().join("ran");
    let touch = command_line(
        &env,
        &odd,
        Path::new("/usr/bin/touch"),
        &[marker.to_str().unwrap()],
    )
    .unwrap();
    for cut in [touch.len() - 2, touch.len() - 4, touch.len() / 2, 2] {
        let out = std::process::Command::new("/bin/sh")
            .arg("-s")
            .env_clear()
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&touch.as_bytes()[..cut])?;
                child.wait_with_output()
            })
            .unwrap();
        assert!(!out.status.success(), "cut at {cut}: {out:?}");
        assert!(!marker.exists(), "a line cut at {cut} ran its command");
    }
    through_sh(&touch);
    assert!(marker.exists(), "the whole line runs it");
}

struct Host {
    _dir: tempfile::TempDir,
    work: PathBuf,
    confinement: Arc<Confinement>,
    pool: WarmPool,
}

async fn host() -> Host {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let work = dir.path().join("work");
    let vars = [
        (
            "KILN_DATABASE_URL",
            "postgres://unused@127.0.0.1:1/unused".to_owned(),
        ),
        (
            "KILN_ARTIFACTS",
            format!("file://{}", dir.path().join("artifacts").display()),
        ),
        ("KILN_WORK_DIR", work.display().to_string()),
        ("KILN_PNPM_STORE", work.join("pnpm-store").display().to_string()),
    ];
    let settings =
        kiln_shared::config::Settings::from_vars(vars.into_iter().map(|(k, v)| (k.to_owned(), v))).unwrap();
    let confinement = Arc::new(Confinement::probe(&settings).await.unwrap());
    let pool = WarmPool::start(confinement.clone(), 1, true).expect("warm sandboxes work here");
    Host {
        _dir: dir,
        work,
        confinement,
        pool,
    }
}

impl Host {
    /// The pool's warm sandbox, once made.
    async fn take(&self) -> Warm {
        let started = std::time::Instant::now();
        loop {
            if let Some(warm) = self.pool.take() {
                return warm;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no warm sandbox in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs a shell script as an install in `cell`: what it printed, and how it started.
    async fn install(&self, cell: Cell, name: &str) -> (String, kiln_shared::metrics::Metrics) {
        let root = self.work.join(name);
        let project = root.join("project");
        std::fs::create_dir_all(&project).unwrap();
        std::fs::create_dir_all(root.join("home")).unwrap();
        Confinement::hand_over(&root, cell.ids()).unwrap();
        let metrics = kiln_shared::metrics::Metrics::new("builder");
        let env = StepEnv::new(&root.join("home"), &root.join("tmp"), &root.join("cache"), 20)
            .confined(self.confinement.clone(), Arc::new(cell), 1 << 20)
            .counted_by(metrics.clone())
            .as_store()
            .with_network(Network::Registry);
        let log = BuildLog::new(1 << 20);
        let script = r#"echo "home=$HOME pwd=$PWD proxy=${HTTPS_PROXY:-none} user=$(id -u) ci=$CI"; ls / | tr '\n' ' '"#;
        let (status, out) = run_capturing(
            &env,
            Invocation {
                program: "sh",
                args: &["-c", script],
                cwd: &project,
                stdin: None,
            },
            tokio::time::Instant::now() + Duration::from_secs(20),
            &log,
            1 << 16,
        )
        .await
        .unwrap();
        assert!(status.success(), "{status:?}: {}", log.tail(20));
        (String::from_utf8(out).unwrap(), metrics)
    }
}

fn starts(metrics: &kiln_shared::metrics::Metrics, sandbox: &str) -> f64 {
    kiln_shared::metrics::sample(
        &metrics.encode(),
        "kiln_install_starts_total",
        &[("sandbox", sandbox)],
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn an_install_starts_warm_sees_what_a_cold_one_sees_and_a_dead_one_falls_back_cold() {
    let host = host().await;

    // Warm: the pool's sandbox runs the install, and the pool makes the next one.
    let warm = host.take().await;
    let cell = Cell::warm(warm, &host.work.join("a"));
    let (warm_out, metrics) = host.install(cell, "a").await;
    assert_eq!((starts(&metrics, "warm"), starts(&metrics, "cold")), (1.0, 0.0));

    // Cold, for comparison: a cell of its own, no warm sandbox.
    let cell = host.confinement.cell("cold-b", &host.work.join("b")).unwrap();
    let (cold_out, metrics) = host.install(cell, "b").await;
    assert_eq!((starts(&metrics, "warm"), starts(&metrics, "cold")), (0.0, 1.0));
    assert_eq!(
        warm_out.replace("/a/", "/x/"),
        cold_out.replace("/b/", "/x/"),
        "the same environment, folder, user, network and file system"
    );
    assert!(
        warm_out.contains(&format!("pwd={}", host.work.join("a/project").display())),
        "{warm_out}"
    );

    // A warm sandbox that died before its build came: the install starts cold, and works.
    let mut dead = host.take().await;
    let pid = dead.child.child.id().unwrap();
    nix::sys::signal::kill(Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let _ = dead.child.child.wait().await;
    let cell = Cell::warm(dead, &host.work.join("c"));
    let (out, metrics) = host.install(cell, "c").await;
    assert_eq!((starts(&metrics, "warm"), starts(&metrics, "cold")), (0.0, 1.0));
    assert_eq!(out.replace("/c/", "/x/"), cold_out.replace("/b/", "/x/"));

    // A warm sandbox given back unused serves again; a closed pool keeps none.
    let unused = host.take().await;
    let cell = Cell::warm(unused, &host.work.join("d"));
    host.pool
        .give_back(cell.unused_warm().expect("no command ran in it"));
    assert_eq!(host.pool.counts().0, 1);
    host.pool.close();
    assert_eq!(host.pool.counts().0, 0);
    assert!(host.pool.take().is_none());
}
