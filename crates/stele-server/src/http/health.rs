//! Liveness, readiness and Prometheus metrics.

use super::AppState;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use stele_api::{Live, Ready};

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health/live", tag = "operations", operation_id = "get_live",
    responses((status = 200, body = Live)))]
pub async fn live() -> axum::Json<Live> {
    axum::Json(Live {
        status: "ok".to_string(),
    })
}

/// Readiness: the store answers and the writer runs; reports the search index's lag.
#[utoipa::path(get, path = "/health/ready", tag = "operations", operation_id = "get_ready",
    responses(
        (status = 200, description = "Ready to serve", body = Ready),
        (status = 503, description = "The store does not answer or the writer stopped", body = Ready),
    ))]
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let probe = state.clone();
    let heads = tokio::task::spawn_blocking(move || {
        probe.store.ping()?;
        probe.store.heads()
    })
    .await
    .ok()
    .and_then(|r| {
        r.inspect_err(|e| tracing::warn!(error = %e, "readiness: store unavailable"))
            .ok()
    });
    let writer = state.sequencer.is_healthy();
    let index_lag = heads.as_ref().map(|heads| {
        let progress = state.index.progress();
        heads
            .iter()
            .map(|h| {
                h.size
                    .saturating_sub(progress.get(&h.tenant).copied().unwrap_or(0))
            })
            .sum()
    });
    if let Some(lag) = index_lag {
        metrics::gauge!("stele_index_lag_events").set(lag as f64);
    }
    let ok = heads.is_some() && writer;
    let body = Ready {
        status: if ok { "ready" } else { "not_ready" }.to_string(),
        store: heads.is_some(),
        writer,
        index_lag,
        queued_events: state.sequencer.queued(),
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "get_metrics", responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
