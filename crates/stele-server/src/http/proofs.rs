//! Proofs of the verifiable log, built from stored tiles (O(log n) tile reads, never one per
//! leaf): inclusion proofs against a signed checkpoint, and consistency proofs between two
//! tree sizes.

use super::AppState;
use super::checkpoints::latest;
use super::error::{ApiError, blocking};
use super::params::{ParamReader, Params, tenant_name, whole};
use crate::workers::checkpointer::Signed;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use stele_api::{ConsistencyProof, ErrorCode, InclusionProof};
use stele_store::{LogStore, tile_reader};
use stele_tlog::proof::encode_hashes;
use stele_tlog::tiles::TileTrees;

/// Consistency proof
///
/// Proves that the tree of `to` leaves extends the tree of `from` leaves (RFC 9162 §2.1.4).
/// `to` defaults to the latest checkpoint's size and may not exceed it.
#[utoipa::path(get, path = "/v1/logs/{tenant}/proof/consistency", tag = "verification", operation_id = "get_consistency_proof",
    params(("tenant" = String, Path), ("from" = u64, Query), ("to" = Option<u64>, Query)),
    responses(
        (status = 200, body = stele_api::ConsistencyProof),
        (status = 400, description = "`from` or `to` is invalid, or beyond the latest checkpoint", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such log, or it has no signed checkpoint yet", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error, or stored data that fails an integrity check", body = stele_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The store is unavailable; retry after `Retry-After`", body = stele_api::Problem, content_type = "application/problem+json"),
    ))]
pub async fn consistency(
    State(state): State<Arc<AppState>>,
    Path(tenant): Path<String>,
    Query(raw): Params,
) -> Result<Response, ApiError> {
    let tenant = tenant_name(&tenant)?;
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
            .map_err(ApiError::from)
    })
    .await?;
    Ok(axum::Json(ConsistencyProof {
        from,
        to,
        consistency: encode_hashes(&proof),
    })
    .into_response())
}

/// How long `?proof=true` waits for a checkpoint to cover a just-written event.
fn proof_wait(state: &AppState) -> Duration {
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
            .inclusion_proof(seq)?;
        Ok(InclusionProof {
            leaf_index: seq,
            tree_size: signed.size,
            audit_path: encode_hashes(&path),
            checkpoint: signed.note.clone(),
        })
    }
}
