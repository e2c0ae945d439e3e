//! The verifiable log, read-only: checkpoints, C2SP tlog-tiles (hash tiles and entry
//! bundles) and consistency proofs, so that any tlog client can check a log without Stele.
//!
//! Every proof is computed from stored tiles: O(log n) tile reads, never one per leaf.

use super::AppState;
use super::events::{ParamReader, Params};
use super::problem::ApiError;
use crate::checkpoints::Signed;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use stele_core::ErrorCode;
use stele_core::merkle::NodeHash;
use stele_core::tiles::TileTrees;
use stele_core::tiles::{TilePath, parse_tile_path};
use stele_store::{LogStore, tile_reader};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;
/// Tiles and bundles never change once served: a given path always has the same bytes.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

pub(super) fn base64_hashes(hashes: &[NodeHash]) -> Vec<String> {
    hashes.iter().map(|h| B64.encode(h.0)).collect()
}

fn tenant_of(raw: &str) -> Result<String, ApiError> {
    stele_core::validate_tenant(raw).map_err(|e| ApiError::new(ErrorCode::InvalidTenant, e))?;
    Ok(raw.to_string())
}

fn log_not_found(tenant: &str) -> ApiError {
    ApiError::not_found(format!(
        "no log `{tenant}`, or it has no signed checkpoint yet"
    ))
}

/// The latest checkpoint of `tenant`, or 404.
fn latest(state: &AppState, tenant: &str) -> Result<Arc<Signed>, ApiError> {
    state
        .checkpoints
        .latest(tenant)
        .ok_or_else(|| log_not_found(tenant))
}

/// Runs a store read on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// One log and how far it is signed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LogInfo {
    pub tenant: String,
    /// Events committed.
    pub size: u64,
    /// Tree size of the latest signed checkpoint, if any.
    pub checkpoint_size: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LogList {
    pub logs: Vec<LogInfo>,
}

/// List the logs
#[utoipa::path(get, path = "/v1/logs", tag = "verification",
    responses((status = 200, body = LogList)))]
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let heads = blocking(move || store.heads().map_err(ApiError::unavailable)).await?;
    let logs = heads
        .into_iter()
        .map(|h| LogInfo {
            checkpoint_size: state.checkpoints.latest(&h.tenant).map(|s| s.size),
            tenant: h.tenant,
            size: h.size,
        })
        .collect();
    Ok(axum::Json(LogList { logs }).into_response())
}

/// The latest checkpoint
///
/// The log's tree head as a C2SP tlog-checkpoint in C2SP signed-note form, signed with the
/// server's Ed25519 key (`stele keys public` prints the verifier key).
#[utoipa::path(get, path = "/v1/logs/{tenant}/checkpoint", tag = "verification",
    params(("tenant" = String, Path)),
    responses(
        (status = 200, body = String, content_type = "text/plain; charset=utf-8"),
        (status = 404, body = super::problem::Problem, content_type = "application/problem+json"),
    ))]
pub async fn checkpoint(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(&tenant)?;
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

/// One stored checkpoint.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckpointEntry {
    pub size: u64,
    /// Base64 root hash.
    pub root_hash: String,
    pub signed_at: String,
    /// The signed note.
    pub note: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CheckpointPage {
    pub checkpoints: Vec<CheckpointEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<u64>,
}

/// Stored checkpoints, for monitors
///
/// Every checkpoint the server signed for the log with tree size above `after`, oldest first.
#[utoipa::path(get, path = "/v1/logs/{tenant}/checkpoints", tag = "verification",
    params(("tenant" = String, Path),
        ("after" = Option<u64>, Query, description = "Only checkpoints of a larger tree (default 0)"),
        ("limit" = Option<usize>, Query, description = "1..=1000, default 100")),
    responses((status = 200, body = CheckpointPage),
        (status = 400, body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn checkpoints(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    Query(raw): Params,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(&tenant)?;
    let p = ParamReader::new(raw, &["after", "limit"])?;
    let after = p.parsed("after", whole)?.unwrap_or(0);
    let limit = p
        .parsed("limit", |v| match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(format!("must be a whole number from 1 to {MAX_LIMIT}")),
        })?
        .unwrap_or(DEFAULT_LIMIT);
    let store = state.store.clone();
    let stored = blocking(move || {
        store
            .checkpoints(&tenant, after, limit + 1)
            .map_err(ApiError::unavailable)
    })
    .await?;
    let more = stored.len() > limit;
    let mut checkpoints = Vec::with_capacity(limit);
    for stored in stored.into_iter().take(limit) {
        let signed = Signed::from_stored(&stored).map_err(ApiError::internal)?;
        checkpoints.push(CheckpointEntry {
            size: signed.size,
            root_hash: B64.encode(signed.root.0),
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

fn whole(v: &str) -> Result<u64, String> {
    if v.len() > 1 && v.starts_with('0') {
        return Err("must be a whole number without leading zeros".into());
    }
    v.parse::<u64>()
        .map_err(|_| "must be a whole number".to_string())
}

/// A consistency proof between two tree sizes.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    /// RFC 9162 consistency proof, base64 hashes.
    pub consistency: Vec<String>,
}

/// Consistency proof
///
/// Proves that the tree of `to` leaves extends the tree of `from` leaves (RFC 9162 §2.1.4).
/// `to` defaults to the latest checkpoint's size and may not exceed it.
#[utoipa::path(get, path = "/v1/logs/{tenant}/proof/consistency", tag = "verification",
    params(("tenant" = String, Path), ("from" = u64, Query), ("to" = Option<u64>, Query)),
    responses((status = 200, body = ConsistencyProof),
        (status = 400, body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 404, body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn consistency(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    Query(raw): Params,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(&tenant)?;
    let p = ParamReader::new(raw, &["from", "to"])?;
    let from = p
        .parsed("from", whole)?
        .ok_or_else(|| ApiError::invalid_query("`from` is required"))?;
    let signed = latest(&state, &tenant)?;
    let to = p.parsed("to", whole)?.unwrap_or(signed.size);
    if to > signed.size {
        return Err(ApiError::invalid_query(format!(
            "`to` is {to}, beyond the latest checkpoint ({})",
            signed.size
        )));
    }
    if from > to {
        return Err(ApiError::invalid_query(format!(
            "`from` ({from}) exceeds `to` ({to})"
        )));
    }
    let reader = ProofReader::new(&state, &tenant);
    let proof = blocking(move || {
        tile_reader(reader.store.as_ref(), &reader.tenant, to)
            .sharing(reader.trees, &reader.tenant)
            .consistency_proof(from)
            .map_err(ApiError::internal)
    })
    .await?;
    Ok(axum::Json(ConsistencyProof {
        from,
        to,
        consistency: base64_hashes(&proof),
    })
    .into_response())
}

/// A tile or an entry bundle
///
/// C2SP tlog-tiles: `tile/<L>/<N>[.p/<W>]` serves hash tiles (W × 32 bytes) and
/// `tile/entries/<N>[.p/<W>]` the entry bundles: each event's canonical bytes behind a
/// big-endian uint16 length.
#[utoipa::path(get, path = "/v1/logs/{tenant}/tile/{path}", tag = "verification",
    params(("tenant" = String, Path), ("path" = String, Path, description = "e.g. `0/x001/234.p/17` or `entries/000`")),
    responses((status = 200, body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 404, body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn tile(
    State(state): State<Arc<AppState>>,
    Path((tenant, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = tenant_of(&tenant)?;
    let parsed = parse_tile_path(&path)
        .ok_or_else(|| ApiError::not_found(format!("`tile/{path}` is not a tile path")))?;
    let store = state.store.clone();
    let body = blocking(move || match parsed {
        TilePath::Hashes(id) => {
            let tile = store
                .read_tile(&tenant, id)
                .map_err(ApiError::unavailable)?;
            tile.map(|t| t.hashes)
                .ok_or_else(|| ApiError::not_found(format!("log `{tenant}` has no {id}")))
        }
        TilePath::Entries(id) => {
            let width = usize::from(id.width);
            let events = store
                .read_range(&tenant, id.first_entry(), width)
                .map_err(ApiError::unavailable)?;
            if events.len() < width {
                return Err(ApiError::not_found(format!(
                    "log `{tenant}` has no {}",
                    id.entries_path()
                )));
            }
            let mut bundle = Vec::with_capacity(events.iter().map(|e| e.bytes.len() + 2).sum());
            for event in events {
                let len = u16::try_from(event.bytes.len()).map_err(ApiError::internal)?;
                bundle.extend_from_slice(&len.to_be_bytes());
                bundle.extend_from_slice(&event.bytes);
            }
            Ok(bundle)
        }
    })
    .await?;
    let mut response = Body::from(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    Ok(response)
}

/// An inclusion proof against a signed checkpoint.
#[derive(Serialize, utoipa::ToSchema)]
pub struct InclusionProof {
    /// The event's `seq`.
    pub leaf_index: u64,
    pub tree_size: u64,
    /// RFC 9162 audit path, base64 hashes, nearest the leaf first.
    pub audit_path: Vec<String>,
    /// The signed checkpoint of `tree_size` leaves the path leads to.
    pub checkpoint: String,
}

/// How long `?proof=true` waits for a checkpoint to cover a just-written event.
pub(super) fn proof_wait(state: &AppState) -> Duration {
    Duration::from_millis(state.config.log.checkpoint_interval_ms) + Duration::from_secs(5)
}

/// The inclusion proof of leaf `seq` against the latest checkpoint that covers it.
pub(super) async fn inclusion(
    state: &Arc<AppState>,
    tenant: &str,
    seq: u64,
) -> Result<InclusionProof, ApiError> {
    let signed = state
        .checkpoints
        .wait_for(tenant, seq + 1, proof_wait(state))
        .await
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::CheckpointPending,
                format!("no checkpoint of log `{tenant}` covers seq {seq} yet"),
            )
        })?;
    let reader = ProofReader::new(state, tenant);
    blocking(move || reader.inclusion(&signed, seq)).await
}

/// What a blocking thread needs to build proofs of one log.
pub(super) struct ProofReader {
    pub(super) store: Arc<dyn LogStore>,
    trees: Arc<TileTrees>,
    pub(super) tenant: String,
}

impl ProofReader {
    pub(super) fn new(state: &AppState, tenant: &str) -> ProofReader {
        ProofReader {
            store: state.store.clone(),
            trees: state.tile_trees.clone(),
            tenant: tenant.to_string(),
        }
    }

    /// The inclusion proof of leaf `seq` in the tree `signed` (which must cover it).
    /// Blocks: call it on a blocking thread.
    pub(super) fn inclusion(&self, signed: &Signed, seq: u64) -> Result<InclusionProof, ApiError> {
        let path = tile_reader(self.store.as_ref(), &self.tenant, signed.size)
            .sharing(self.trees.clone(), &self.tenant)
            .inclusion_proof(seq)
            .map_err(ApiError::internal)?;
        Ok(InclusionProof {
            leaf_index: seq,
            tree_size: signed.size,
            audit_path: base64_hashes(&path),
            checkpoint: signed.note.clone(),
        })
    }
}
