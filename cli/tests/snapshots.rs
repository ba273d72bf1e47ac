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
