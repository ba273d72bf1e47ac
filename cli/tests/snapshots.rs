//! Snapshots of what `kiln` prints (`trycmd`: the cases and their expected output are in
//! `tests/cmd/`; `TRYCMD=overwrite cargo test -p kiln-cli --test snapshots` rewrites them):
//! the `--help` of every command, and error output, some of it answered by a real API.

#[allow(dead_code)]
#[path = "../../api/tests/api/helpers.rs"]
mod helpers;

use helpers::{spawn_app, Options};

#[test]
fn help_of_every_command() {
    trycmd::TestCases::new().case("tests/cmd/help/*.toml");
}

#[tokio::test]
async fn errors_as_the_api_and_clap_answer_them() {
    let app = spawn_app(Options::without_builders()).await;
    let api = app.api.clone();
    tokio::task::spawn_blocking(move || {
        trycmd::TestCases::new()
            .env("KILN_URL", api)
            .case("tests/cmd/errors/*.toml")
            .run();
    })
    .await
    .unwrap();
}

#[test]
fn completion_scripts_complete_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .env_clear()
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for command in ["login", "submit", "watch", "builders", "completion"] {
            assert!(script.contains(command), "{shell}: no {command}");
        }
    }
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a usage error");
}
