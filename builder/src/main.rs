use kiln_shared::config::Settings;
use tokio_util::sync::CancellationToken;

/// Worker threads' stacks: a build's future is deep (the default 2 MiB overflows in debug builds).
const STACK_SIZE: usize = 8 * 1024 * 1024;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(STACK_SIZE)
        .build()
        .expect("starting the tokio runtime");
    runtime.block_on(daemon());
}

async fn daemon() {
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
