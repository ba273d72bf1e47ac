//! The daemon's own listener (`KILN_METRICS_ADDR`): `GET /metrics` (this daemon's counters and
//! histograms, Prometheus text) and `GET /healthz`. It has no authentication: bind it to
//! loopback or the private network Prometheus scrapes from.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use kiln_shared::metrics::CONTENT_TYPE;

use crate::context::Builder;

/// The running listener: its address (for the fleet report) and a handle to stop it.
pub struct MetricsServer {
    pub addr: SocketAddr,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl MetricsServer {
    /// Binds `addr` (a bind failure is a start-up error naming the variable) and serves.
    pub fn start(addr: &str, builder: Arc<Builder>) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(addr).with_context(|| format!("KILN_METRICS_ADDR: cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::from(builder.clone()))
                .route("/metrics", web::get().to(metrics))
                .route("/healthz", web::get().to(healthz))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tracing::info!(addr = %bound, "serving /metrics");
        Ok(Self {
            addr: bound,
            handle,
            task: tokio::spawn(server),
        })
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

async fn metrics(builder: web::Data<Builder>) -> HttpResponse {
    let m = &builder.metrics;
    m.set_running(
        builder.running.builds().len(),
        builder.settings.builder.concurrency,
    );
    HttpResponse::Ok().content_type(CONTENT_TYPE).body(m.encode())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}
