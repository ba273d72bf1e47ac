//! `kiln`: the command-line client of a Kiln farm.
//!
//! Its API and credentials come from `--url`/`KILN_URL` and `--token`/`KILN_TOKEN`, else the
//! profile `kiln login` saved ([`config`]); the product back end's HMAC secret from
//! `KILN_HMAC_SECRET` only. Exit codes: 0 success, 1 an error, 2 a usage error (clap's), 3 a
//! build watched that did not deploy.
//!
//! Modules: [`args`] (the command line), [`commands`] (one module per group of commands),
//! [`client`] (requests and the API's problems), [`config`] and [`link`] (what a command
//! reads from files), [`collect`] (the files `submit` sends), [`sse`] and [`watch`] (event
//! streams, progress), [`output`] (tables, colours, ages).

use std::process::ExitCode;

use clap::Parser;

use commands::Outcome;

mod args;
mod client;
mod collect;
mod commands;
mod config;
mod link;
mod output;
mod sse;
mod watch;

/// The exit code of a build watched that did not deploy.
const NOT_DEPLOYED: u8 = 3;

#[tokio::main]
async fn main() -> ExitCode {
    match commands::run(args::Cli::parse()).await {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::NotDeployed) => ExitCode::from(NOT_DEPLOYED),
        Err(e) => {
            let error = anstyle::AnsiColor::Red.on_default().bold();
            anstream::eprintln!("{}: {e:#}", output::styled("kiln", error));
            ExitCode::FAILURE
        }
    }
}
