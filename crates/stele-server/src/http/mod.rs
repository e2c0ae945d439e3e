//! The HTTP API: shared state, every route in one `router()`, and the OpenAPI document.
//! Handlers, one module per resource, convert between wire types (`stele-api`) and core
//! types at this edge and call into the store, the index and the sequencer.

pub mod audit;
mod checkpoints;
pub mod connections;
pub mod error;
mod events;
mod health;
mod ingest;
mod keys;
pub mod middleware;
mod params;
mod proofs;
pub mod reads;
mod tiles;
mod traces;

use crate::config::Config;
use crate::sequencer::Sequencer;
use crate::workers::checkpointer::Published;
use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use stele_index::{Progress, SearchIndex};
use stele_store::LogStore;
use stele_tlog::tiles::TileTrees;
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
    /// Threads for long reads (listings, traces), below the async workers' priority.
    pub reads: reads::ReadPool,
    /// The logs this node knows, against `ingest.max_tenants`.
    pub tenants: crate::tenants::TenantGate,
    /// Hashed trees of full tiles, shared by every proof.
    pub tile_trees: Arc<TileTrees>,
    /// Changes after every search index commit.
    pub index_progress: watch::Sender<Progress>,
    pub metrics: PrometheusHandle,
    /// The API keys; `None` with `--insecure-no-auth`.
    pub keys: Option<Arc<crate::access::KeyRing>>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Stele", description = "A tamper-evident audit log: ingest, query and trace audit events, and verify the log."),
    paths(
        ingest::ingest, events::list, events::get, traces::trace,
        checkpoints::list, checkpoints::checkpoint, checkpoints::checkpoints,
        proofs::consistency, tiles::tile,
        keys::list, keys::create, keys::get, keys::revoke,
        health::live, health::ready, health::metrics,
    ),
    components(schemas(stele_api::Problem, stele_api::EventError)),
    modifiers(&KeysInTheDocument),
    tags(
        (name = "events", description = "Ingest and read audit events"),
        (name = "verification", description = "Checkpoints, tiles and proofs of the verifiable log"),
        (name = "access", description = "API keys (admins of every tenant)"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

/// Writes the route table's access rules into the document: the bearer scheme, and on
/// every operation that needs a key, the requirement (or none, for the proof routes a
/// tenant may make public) and its 401, 403 and 429 answers.
struct KeysInTheDocument;

impl utoipa::Modify for KeysInTheDocument {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use stele_auth::routes::{self, Access};
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("stl_<key id>_<secret>")
                    .description(Some("An API key: `Authorization: Bearer stl_…`"))
                    .build(),
            ),
        );
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    stele_api::PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let route_path = path.replace("{path}", "{*path}");
            for (method, operation) in [
                ("GET", &mut item.get),
                ("POST", &mut item.post),
                ("DELETE", &mut item.delete),
            ] {
                let (Some(operation), Some(route)) =
                    (operation.as_mut(), routes::find(method, &route_path))
                else {
                    continue;
                };
                let mut security = vec![SecurityRequirement::new("api_key", Vec::<String>::new())];
                match route.access {
                    Access::Public => continue,
                    Access::Verifiable => security.push(SecurityRequirement::default()),
                    Access::Key(_) => {}
                }
                operation.security = Some(security);
                let responses = &mut operation.responses.responses;
                for (status, description) in [
                    (
                        "401",
                        "No valid API key (`unauthenticated`; with `WWW-Authenticate: Bearer`)",
                    ),
                    (
                        "403",
                        "The key's role or tenants do not allow this (`forbidden`)",
                    ),
                    (
                        "429",
                        "Over the key's request rate (`rate_limited`); retry after `Retry-After`",
                    ),
                ] {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| problem(description).into());
                }
            }
        }
    }
}

/// The OpenAPI document the server serves at `/openapi.json`, as pretty JSON.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the document serializes")
}

pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/events", post(ingest::ingest).get(events::list))
        .route("/v1/events/{id}", get(events::get))
        .route("/v1/traces/{correlation_id}", get(traces::trace))
        .route("/v1/logs", get(checkpoints::list))
        .route("/v1/logs/{tenant}/checkpoint", get(checkpoints::checkpoint))
        .route(
            "/v1/logs/{tenant}/checkpoints",
            get(checkpoints::checkpoints),
        )
        .route(
            "/v1/logs/{tenant}/proof/consistency",
            get(proofs::consistency),
        )
        .route("/v1/logs/{tenant}/tile/{*path}", get(tiles::tile))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", get(keys::get).delete(keys::revoke))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route_layer(from_fn_with_state(state.clone(), middleware::guard))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state);
    let docs = utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi());
    middleware::layers(Router::new().merge(docs).merge(api))
}
