use kiln_shared::config::Settings;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    kiln_shared::telemetry::init("info");
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kiln-builder: {e}");
            std::process::exit(2);
        }
    };
    let shutdown = CancellationToken::new();
    let signal_token = shutdown.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutdown requested: no new builds will be claimed");
        signal_token.cancel();
    });
    match kiln_builder::run(settings, shutdown).await {
        Ok(()) => tracing::info!("kiln-builder stopped"),
        Err(e) => {
            eprintln!("kiln-builder: {e:#}");
            std::process::exit(1);
        }
    }
}
