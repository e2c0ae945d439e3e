//! The logs and their signed checkpoints: every log with its size, the latest checkpoint
//! as a C2SP signed note, and every stored checkpoint for monitors.

use super::AppState;
use super::audit::ResultCount;
use super::error::{ApiError, blocking};
use super::params::{ParamReader, Params, tenant_name, whole};
use crate::access::Caller;
use crate::workers::checkpointer::Signed;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use stele_api::{CheckpointEntry, CheckpointPage, ErrorCode, LogInfo, LogList};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;

fn log_not_found(tenant: &str) -> ApiError {
    ApiError::not_found(format!(
        "no log `{tenant}`, or it has no signed checkpoint yet"
    ))
}

/// The latest checkpoint of `tenant`, or 404.
pub(super) fn latest(state: &AppState, tenant: &str) -> Result<Arc<Signed>, ApiError> {
    state
        .checkpoints
        .latest(tenant)
        .ok_or_else(|| log_not_found(tenant))
}

/// List the logs
///
/// In name order, a page at a time (`limit`, then `cursor` = the previous page's
/// `next_cursor`). Only the logs the key may read are listed.
#[utoipa::path(get, path = "/v1/logs", tag = "verification", operation_id = "list_logs",
    params(
        ("limit" = Option<usize>, Query, description = "1..=1000, default 100"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, body = stele_api::LogList),
        (status = 400, description = "A parameter or the cursor is invalid", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error, or stored data that fails an integrity check", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; retry after `Retry-After`", body = stele_api::Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(raw): Params,
) -> Result<Response, ApiError> {
    let p = ParamReader::new(raw, &["limit", "cursor"])?;
    let limit = p.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let after = match p.text("cursor")? {
        None => String::new(),
        Some(cursor) => log_cursor::decode(&cursor).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidCursor,
                "the cursor is malformed or not from a listing of logs",
            )
        })?,
    };
    let store = state.store.clone();
    let reader = caller.clone();
    // One more than a page tells whether another follows. Logs the key may not read are
    // skipped, reading on until the page is full or the logs end.
    let mut heads = blocking(move || {
        let mut found = Vec::new();
        let mut after = after;
        loop {
            let batch = store.heads_after(&after, limit + 1)?;
            let done = batch.len() <= limit;
            if let Some(last) = batch.last() {
                after = last.tenant.clone();
            }
            found.extend(batch.into_iter().filter(|h| reader.may_read(&h.tenant)));
            if done || found.len() > limit {
                return Ok(found);
            }
        }
    })
    .await?;
    let more = heads.len() > limit;
    heads.truncate(limit);
    let next_cursor = more
        .then(|| heads.last().map(|h| log_cursor::encode(&h.tenant)))
        .flatten();
    let count = heads.len() as u64;
    let logs = heads
        .into_iter()
        .map(|h| LogInfo {
            checkpoint_size: state.checkpoints.latest(&h.tenant).map(|s| s.size),
            tenant: h.tenant,
            size: h.size,
        })
        .collect();
    let mut response = axum::Json(LogList { logs, next_cursor }).into_response();
    response.extensions_mut().insert(ResultCount(count));
    Ok(response)
}

/// Cursors of the log listing: the last name of a page, opaque to clients.
mod log_cursor {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    const PREFIX: &str = "log:";

    pub fn encode(tenant: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{PREFIX}{tenant}"))
    }

    pub fn decode(cursor: &str) -> Option<String> {
        let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let tenant = text.strip_prefix(PREFIX)?;
        stele_core::validate_tenant(tenant).ok()?;
        Some(tenant.to_string())
    }
}

/// The latest checkpoint
///
/// The log's tree head as a C2SP tlog-checkpoint in C2SP signed-note form, signed with the
/// server's Ed25519 key (`stele keys public` prints the verifier key).
#[utoipa::path(get, path = "/v1/logs/{tenant}/checkpoint", tag = "verification", operation_id = "get_checkpoint",
    params(("tenant" = String, Path)),
    responses(
        (status = 200, body = String, content_type = "text/plain; charset=utf-8"),
        (status = 400, description = "The tenant name is invalid", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such log, or it has no signed checkpoint yet", body = stele_api::Problem, content_type = "application/problem+json"),
    ))]
pub async fn checkpoint(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = tenant_name(&tenant)?;
    let signed = latest(&state, &tenant)?;
    let mut response = signed.note.clone().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Stored checkpoints, for monitors
///
/// Every checkpoint the server signed for the log with tree size above `after`, oldest first.
#[utoipa::path(get, path = "/v1/logs/{tenant}/checkpoints", tag = "verification", operation_id = "list_checkpoints",
    params(("tenant" = String, Path),
        ("after" = Option<u64>, Query, description = "Only checkpoints of a larger tree (default 0)"),
        ("limit" = Option<usize>, Query, description = "1..=1000, default 100")),
    responses(
        (status = 200, body = stele_api::CheckpointPage),
        (status = 400, description = "A parameter or the tenant name is invalid", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error, or stored data that fails an integrity check", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; retry after `Retry-After`", body = stele_api::Problem, content_type = "application/problem+json"),
    ))]
pub async fn checkpoints(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    Query(raw): Params,
) -> Result<Response, ApiError> {
    let tenant = tenant_name(&tenant)?;
    let p = ParamReader::new(raw, &["after", "limit"])?;
    let after = p.parsed("after", whole)?.unwrap_or(0);
    let limit = p.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let store = state.store.clone();
    let stored = blocking(move || Ok(store.checkpoints(&tenant, after, limit + 1)?)).await?;
    let more = stored.len() > limit;
    let mut checkpoints = Vec::with_capacity(limit);
    for stored in stored.into_iter().take(limit) {
        let signed = Signed::from_stored(&stored).map_err(ApiError::corrupt)?;
        checkpoints.push(CheckpointEntry {
            size: signed.size,
            root_hash: signed.root.to_base64(),
            signed_at: signed.signed_at.to_string(),
            note: signed.note,
        });
    }
    let next_after = more.then(|| checkpoints.last().map(|c| c.size)).flatten();
    Ok(axum::Json(CheckpointPage {
        checkpoints,
        next_after,
    })
    .into_response())
}
