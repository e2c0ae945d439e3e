//! `stele proof verify`: checks one saved `GET /v1/events/{id}?proof=true` answer offline,
//! with nothing but the verifier key.

use anyhow::{Context, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::Value;
use stele_core::merkle::{NodeHash, verify_inclusion};
use stele_core::note::{VerifierKey, verify_checkpoint};
use stele_core::{Event, canonical, leaf_hash};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    event: Value,
    proof: Proof,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Proof {
    leaf_index: u64,
    tree_size: u64,
    audit_path: Vec<String>,
    checkpoint: String,
}

/// What a verified proof establishes.
#[derive(Debug)]
pub struct Verified {
    pub origin: String,
    pub seq: u64,
    pub tree_size: u64,
    pub id: Option<uuid::Uuid>,
}

/// Verifies a saved answer. The event's leaf hash is recomputed from its RFC 8785 form,
/// so re-formatting the saved JSON does not matter, while any change to a value does.
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
    let checkpoint = verify_checkpoint(&proof.checkpoint, key)
        .with_context(|| format!("the checkpoint is not validly signed by {}", key.name()))?;
    ensure!(
        checkpoint.size == proof.tree_size,
        "the proof is for a tree of {} but the checkpoint signs {}",
        proof.tree_size,
        checkpoint.size
    );
    if let Some(tenant) = &event.tenant
        && !checkpoint.origin.ends_with(&format!("/{tenant}"))
    {
        bail!(
            "the event is in log `{tenant}` but the checkpoint is of `{}`",
            checkpoint.origin
        );
    }
    let path = proof
        .audit_path
        .iter()
        .map(|h| {
            let bytes = B64.decode(h).ok()?;
            Some(NodeHash(bytes.try_into().ok()?))
        })
        .collect::<Option<Vec<_>>>()
        .context("the audit path holds a malformed hash")?;
    let leaf = leaf_hash(&bytes).into();
    if !verify_inclusion(
        leaf,
        proof.leaf_index,
        proof.tree_size,
        &path,
        checkpoint.root,
    ) {
        bail!(
            "the inclusion proof does not lead to the signed root: the event or the proof was altered"
        );
    }
    Ok(Verified {
        origin: checkpoint.origin,
        seq: proof.leaf_index,
        tree_size: checkpoint.size,
        id: event.id,
    })
}
