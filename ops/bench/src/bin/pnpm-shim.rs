//! kiln-bench-pnpm-shim: stands in for `pnpm` on the PATH of the builder daemons that the
//! benchmark starts as processes, to record when each build process started.
//!
//! A daemon runs a build's steps as `pnpm ...` looked up on its PATH; the benchmark puts a copy
//! of this program named `pnpm` in a folder of its own first on that PATH. Its first act is to
//! read the clock (`CLOCK_REALTIME`, the clock the benchmark reads when it submits); it then
//! appends one line to `starts.log` beside itself:
//!
//! ```text
//! <unix ns> <pid> <cwd> <args...>
//! ```
//!
//! (one `write` to a file opened with `O_APPEND`, so lines of concurrent builds never mix) and
//! replaces itself (`exec`, same pid, same process group) with the real `pnpm`: the first
//! `pnpm` on PATH that is not in its own folder. The build runs exactly as it would without
//! it; the record costs a few hundred microseconds of start-up.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let own_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let cwd = std::env::current_dir().unwrap_or_default();
    let line = format!(
        "{started} {} {} {}\n",
        std::process::id(),
        cwd.display(),
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let recorded = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(own_dir.join("starts.log"))
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = recorded {
        eprintln!(
            "kiln-bench-pnpm-shim: cannot record the start in {}: {e}",
            own_dir.display()
        );
    }
    let Some(real) = real_pnpm(&own_dir) else {
        eprintln!("kiln-bench-pnpm-shim: no pnpm on PATH besides the shim");
        std::process::exit(127);
    };
    let err = std::process::Command::new(&real).arg0("pnpm").args(&args).exec();
    eprintln!("kiln-bench-pnpm-shim: cannot run {}: {err}", real.display());
    std::process::exit(126);
}

/// The first `pnpm` on PATH outside `own_dir`.
fn real_pnpm(own_dir: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.as_path() != own_dir)
        .map(|dir| dir.join("pnpm"))
        .find(|candidate| candidate.is_file())
}
