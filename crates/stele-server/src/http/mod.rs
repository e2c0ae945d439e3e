//! The HTTP API: routes, shared state, and the middleware that counts requests. Handlers
//! convert between wire types and core types at this edge and call into the core crates.

mod events;
mod health;
mod ingest;
mod logs;
pub mod problem;

pub use ingest::{IngestResponse, Receipt};

use crate::checkpoints::Published;
use crate::config::Config;
use crate::sequencer::Sequencer;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Instant;
use stele_core::tiles::TileTrees;
use stele_index::{Progress, SearchIndex};
use stele_store::LogStore;
use tokio::sync::watch;
use utoipa::OpenApi;

/// What every handler can reach.
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn LogStore>,
    pub index: Arc<SearchIndex>,
    pub sequencer: Sequencer,
    /// The latest signed checkpoint of each log.
    pub checkpoints: Arc<Published>,
    /// Hashed trees of full tiles, shared by every proof.
    pub tile_trees: Arc<TileTrees>,
    /// Changes after every search index commit.
    pub index_progress: watch::Sender<Progress>,
    pub metrics: PrometheusHandle,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Stele", description = "A tamper-evident audit log: ingest, query and trace audit events."),
    paths(
        ingest::ingest, events::list, events::get, events::trace,
        logs::list, logs::checkpoint, logs::checkpoints, logs::consistency, logs::tile,
        health::live, health::ready, health::metrics,
    ),
    components(schemas(problem::Problem, problem::EventError, events::ProvenEvent)),
    tags(
        (name = "events", description = "Ingest and read audit events"),
        (name = "verification", description = "Checkpoints, tiles and proofs of the verifiable log"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/events", post(ingest::ingest).get(events::list))
        .route("/v1/events/{id}", get(events::get))
        .route("/v1/traces/{correlation_id}", get(events::trace))
        .route("/v1/logs", get(logs::list))
        .route("/v1/logs/{tenant}/checkpoint", get(logs::checkpoint))
        .route("/v1/logs/{tenant}/checkpoints", get(logs::checkpoints))
        .route(
            "/v1/logs/{tenant}/proof/consistency",
            get(logs::consistency),
        )
        .route("/v1/logs/{tenant}/tile/{*path}", get(logs::tile))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .fallback(problem::not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .with_state(state);
    let docs = utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi());
    Router::new()
        .merge(docs)
        .merge(api)
        .layer(middleware::from_fn(count_requests))
}

async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("stele_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("stele_http_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
