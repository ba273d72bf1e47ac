//! `kiln-api`: the HTTP API and the preview listener, configured by `KILN_*` variables.

use clap::Parser;
use kiln_shared::config::{self, Binary, Settings};

/// Kiln's HTTP API and preview server.
///
/// It takes no arguments but --help and --version, and is configured by environment
/// variables (below).
#[derive(Parser)]
#[command(version, after_help = config::help(Binary::Api))]
struct Cli {}

#[actix_web::main]
async fn main() {
    Cli::parse();
    kiln_shared::telemetry::init("info,actix_server=warn");
    let settings = match Settings::from_env().and_then(|s| s.require_api().map(|()| s)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kiln-api: {e}");
            std::process::exit(2);
        }
    };
    let app = match kiln_api::Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("kiln-api: cannot start: {e:#}");
            std::process::exit(1);
        }
    };
    tracing::info!(
        api_port = app.port(),
        preview_port = app.preview_port(),
        "kiln-api listening"
    );
    match app.run_until_stopped().await {
        Ok(()) => tracing::info!("kiln-api stopped"),
        Err(e) => {
            tracing::error!(error = %e, "kiln-api failed");
            std::process::exit(1);
        }
    }
}
