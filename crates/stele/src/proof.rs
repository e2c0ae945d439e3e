//! `stele proof verify`: checks one saved `GET /v1/events/{id}?proof=true` answer offline,
//! with nothing but the verifier key.

use anyhow::{Context, bail, ensure};
use serde::Deserialize;
use serde_json::Value;
use stele_api::InclusionProof;
use stele_core::{Event, canonical};
use stele_tlog::leaf_hash;
use stele_tlog::note::VerifierKey;
use stele_tlog::proof::{decode_hashes, verify_inclusion_proof};

/// A saved answer. The event is kept as a JSON value: its leaf hash is recomputed from its
/// canonical form, so a reformatted file still verifies while any changed value does not.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    event: Value,
    proof: InclusionProof,
}

/// What a verified proof establishes.
#[derive(Debug)]
pub struct Verified {
    pub origin: String,
    pub seq: u64,
    pub tree_size: u64,
    pub id: Option<uuid::Uuid>,
}

/// Verifies a saved answer.
pub fn verify(answer: &[u8], key: &VerifierKey) -> anyhow::Result<Verified> {
    let answer: Answer =
        serde_json::from_slice(answer).context("not a `GET /v1/events/{id}?proof=true` answer")?;
    let bytes = canonical::to_vec(&answer.event).context("the event cannot be canonicalized")?;
    let event = Event::from_stored(&bytes).context("the event is not a stored Stele event")?;
    let proof = answer.proof;
    ensure!(
        event.seq == Some(proof.leaf_index),
        "the event has seq {:?} but the proof is for leaf {}",
        event.seq,
        proof.leaf_index
    );
    let path = decode_hashes(&proof.audit_path)?;
    let checkpoint = verify_inclusion_proof(
        key,
        leaf_hash(&bytes),
        proof.leaf_index,
        proof.tree_size,
        &path,
        &proof.checkpoint,
    )?;
    if let Some(tenant) = &event.tenant
        && !checkpoint.origin.ends_with(&format!("/{tenant}"))
    {
        bail!(
            "the event is in log `{tenant}` but the checkpoint is of `{}`",
            checkpoint.origin
        );
    }
    Ok(Verified {
        origin: checkpoint.origin,
        seq: proof.leaf_index,
        tree_size: checkpoint.size,
        id: event.id,
    })
}
