//! `Application::build(settings)` binds both listeners, connects the backends (Redis, Postgres
//! with its migrations, the artifact store: `Backends::connect` as the API), and returns a
//! server to run.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use kiln_shared::backends::{Backends, Role};
use kiln_shared::config::Settings;
use kiln_shared::db::{connect_generic, GenericPlans};
use kiln_shared::metrics::Metrics;
use kiln_shared::redis::{Idempotency, QuotaLimits, Signatures};
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;

use crate::auth::authenticate;
use crate::builds::AdmissionDb;
use crate::error::ApiError;
use crate::events::EventHub;
use crate::guard::guard;
use crate::limits::Limits;
use crate::routes::{
    builders, builds, env, events, health, lifecycle, logs, metrics, openapi, project, projects, redeploy,
    serve, tokens, versions, webhooks,
};
use crate::state::{AppState, ImmutableCache};
use crate::telemetry;

pub struct Application {
    port: u16,
    preview_port: u16,
    api: Server,
    preview: Server,
    webhooks: Option<kiln_shared::webhooks::Worker>,
    /// The state the user deletions' background task works with.
    deletions: AppState,
    stop: CancellationToken,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.require_api()?;
        let api_listener = TcpListener::bind(&settings.api.addr)
            .with_context(|| format!("KILN_API_ADDR: cannot listen on {}", settings.api.addr))?;
        let preview_listener = TcpListener::bind(&settings.preview.addr)
            .with_context(|| format!("KILN_PREVIEW_ADDR: cannot listen on {}", settings.preview.addr))?;
        let port = api_listener.local_addr()?.port();
        let preview_port = preview_listener.local_addr()?.port();

        let Backends {
            db,
            redis,
            keys,
            queue,
            live_logs,
            fleet,
            artifacts,
            urls,
        } = Backends::connect(&settings, Role::Api { preview_port }).await?;
        let generic_plans = GenericPlans::new(&settings.database.url)?;
        let max_body = settings.api.max_body_bytes;
        let settings_copy = settings.clone();
        let db_copy = db.clone();
        let metrics = Metrics::new("api");
        let stop = CancellationToken::new();
        let limits = Arc::new(Limits::new(&settings.limits));
        forget_idle_clients(limits.clone(), stop.clone());
        let caps = settings.limits.clone();
        let keyring = kiln_shared::secrets::Keyring::from_settings(&settings.encryption)?.map(Arc::new);
        let near_gates = crate::preview::near::NearGates::default();
        near_gates.follow(redis.clone(), keys.clone());
        let state = web::Data::new(AppState {
            limits,
            quotas: QuotaLimits::of(&settings.limits),
            metrics: metrics.clone(),
            closing: stop.clone(),
            settings: Arc::new(settings),
            queue,
            hub: EventHub::start(redis.clone(), keys.clone()),
            live_logs,
            fleet,
            signatures: Signatures::new(redis.clone(), keys.clone()),
            idempotency: Idempotency::new(redis, keys),
            artifacts,
            urls,
            cache: Arc::new(ImmutableCache::default()),
            keyring,
            deleter: crate::lifecycle::Deleter::default(),
            near_gates,
            batch: AdmissionDb::new(&connect_generic(&generic_plans, AdmissionDb::CONNECTIONS)),
            db,
        });

        let api_state = state.clone();
        let deletions = state.get_ref().clone();
        let api = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(guard))
                .wrap(from_fn(telemetry::observe_api))
                .wrap(TracingLogger::<telemetry::ApiSpan>::new())
                .app_data(web::Data::new(api_state.for_worker()))
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(
                    web::PathConfig::default()
                        .error_handler(|e, _| ApiError::BadRequest(e.to_string()).into()),
                )
                .configure(|cfg| {
                    serve::<health::__path_healthz, _, _>(cfg, "", health::healthz);
                    serve::<health::__path_readyz, _, _>(cfg, "", health::readyz);
                    serve::<openapi::__path_openapi, _, _>(cfg, "", openapi::openapi);
                    serve::<openapi::__path_docs, _, _>(cfg, "", openapi::docs);
                })
                .service(
                    web::resource(<metrics::__path_metrics as utoipa::Path>::path())
                        .wrap(from_fn(authenticate))
                        .route(web::get().to(metrics::metrics))
                        .default_service(web::to(openapi::not_served)),
                )
                .configure(builds::admission)
                .service(
                    web::scope("/v1")
                        .wrap(from_fn(authenticate))
                        .configure(builders::configure)
                        .configure(builds::configure)
                        .configure(env::configure)
                        .configure(events::configure)
                        .configure(lifecycle::configure)
                        .configure(logs::configure)
                        .configure(project::configure)
                        .configure(projects::configure)
                        .configure(redeploy::configure)
                        .configure(tokens::configure)
                        .configure(versions::configure)
                        .configure(webhooks::configure),
                )
                // A documented path with another method: 405 with `Allow`; else 404.
                .default_service(web::to(openapi::not_served))
        })
        // A connection's first request head must arrive within the timeout (else 408 and the
        // connection closes: slowloris); idle keep-alive connections close after theirs; a client
        // that closes its side ends its streams at once (their places are given back).
        .client_request_timeout(caps.head_timeout)
        .keep_alive(caps.keep_alive)
        .h1_allow_half_closed(false)
        .listen(api_listener)?
        .disable_signals()
        .run();

        let preview = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(telemetry::observe_preview))
                .wrap(TracingLogger::<telemetry::PreviewSpan>::new())
                .app_data(state.clone())
                .default_service(web::to(crate::preview::serve))
        })
        .client_request_timeout(caps.head_timeout)
        .keep_alive(caps.keep_alive)
        .listen(preview_listener)?
        .disable_signals()
        .run();

        let webhooks = settings_copy
            .webhooks
            .deliver
            .then(|| kiln_shared::webhooks::Worker::new(db_copy, settings_copy.webhooks.clone(), metrics));
        Ok(Self {
            port,
            preview_port,
            api,
            preview,
            webhooks,
            deletions,
            stop,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn preview_port(&self) -> u16 {
        self.preview_port
    }

    /// Cancelling this token stops the application as a signal would.
    pub fn stopper(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs both servers and the webhook deliveries until SIGINT/SIGTERM (or [`Self::stopper`]),
    /// then stops them gracefully: SSE streams end with a message that tells clients to
    /// reconnect, in-flight requests and delivery attempts finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let api = self.api.handle();
        let preview = self.preview.handle();
        let stop = self.stop.clone();
        let deliveries = self.webhooks.map(|w| tokio::spawn(w.run(stop.clone())));
        let deleter = self.deletions.deleter.clone();
        let deletions = tokio::spawn(deleter.run(self.deletions, stop.clone()));
        let signals = async {
            tokio::select! {
                () = wait_for_signal() => {}
                () = stop.cancelled() => {}
            }
            tracing::info!("shutting down: in-flight requests finish, event and log streams end");
            // Streams end first (they would never finish by themselves), then the servers stop
            // accepting and wait for the requests in flight (up to actix' 30 s).
            stop.cancel();
            futures::join!(api.stop(true), preview.stop(true));
        };
        let servers = async { futures::try_join!(self.api, self.preview).map(|_| ()) };
        let result = tokio::select! {
            r = servers => r,
            () = signals => Ok(()),
        };
        stop.cancel();
        if let Some(d) = deliveries {
            let _ = d.await;
        }
        let _ = deletions.await;
        result
    }
}

/// Every [`crate::limits::FORGET_EVERY`] until the API stops, the per-IP limiter forgets the
/// clients whose allowance is whole again: its memory follows the clients of the last period.
fn forget_idle_clients(limits: Arc<Limits>, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(crate::limits::FORGET_EVERY) => limits.forget_idle(),
            }
            tracing::debug!(clients = limits.remembered(), "per-IP limiter pruned");
        }
    });
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
