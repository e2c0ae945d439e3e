//! Checking a served proof with nothing but the verifier key: an inclusion proof of one
//! entry against a signed checkpoint, as `stele proof verify`, clients and monitors do.

use crate::hash::LeafHash;
use crate::merkle::{NodeHash, verify_inclusion};
use crate::note::{Checkpoint, NoteError, VerifierKey, verify_checkpoint};

/// Why a proof was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("the checkpoint is not validly signed by {key}: {source}")]
    Checkpoint { key: String, source: NoteError },
    #[error("the proof is for a tree of {proof} but the checkpoint signs {checkpoint}")]
    SizeMismatch { proof: u64, checkpoint: u64 },
    #[error("the audit path holds a malformed hash")]
    MalformedHash,
    #[error(
        "the inclusion proof does not lead to the signed root: the entry or the proof was altered"
    )]
    WrongRoot,
}

/// Hashes given as standard base64 (as served), each exactly 32 bytes.
pub fn decode_hashes(hashes: &[String]) -> Result<Vec<NodeHash>, ProofError> {
    hashes
        .iter()
        .map(|h| NodeHash::from_base64(h).ok_or(ProofError::MalformedHash))
        .collect()
}

/// Hashes as standard base64, as served.
pub fn encode_hashes(hashes: &[NodeHash]) -> Vec<String> {
    hashes.iter().map(NodeHash::to_base64).collect()
}

/// Checks that `leaf` is entry `leaf_index` of the tree of `tree_size` entries whose root
/// the checkpoint `note` signs with `key`; answers the checkpoint.
pub fn verify_inclusion_proof(
    key: &VerifierKey,
    leaf: LeafHash,
    leaf_index: u64,
    tree_size: u64,
    audit_path: &[NodeHash],
    note: &str,
) -> Result<Checkpoint, ProofError> {
    let checkpoint = verify_checkpoint(note, key).map_err(|source| ProofError::Checkpoint {
        key: key.name().to_string(),
        source,
    })?;
    if checkpoint.size != tree_size {
        return Err(ProofError::SizeMismatch {
            proof: tree_size,
            checkpoint: checkpoint.size,
        });
    }
    if !verify_inclusion(
        leaf.into(),
        leaf_index,
        tree_size,
        audit_path,
        checkpoint.root,
    ) {
        return Err(ProofError::WrongRoot);
    }
    Ok(checkpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::merkle::{inclusion_proof, root};
    use crate::note::SignerKey;

    #[test]
    fn a_proof_holds_only_for_its_leaf_and_key() {
        let entries: Vec<Vec<u8>> = (0u32..11).map(|i| i.to_be_bytes().to_vec()).collect();
        let leaves: Vec<NodeHash> = entries.iter().map(|e| leaf_hash(e).into()).collect();
        let key = SignerKey::from_seed("example.com/log", [7; 32]).unwrap();
        let other = SignerKey::from_seed("example.com/log", [8; 32]).unwrap();
        let note = key
            .sign(
                &Checkpoint {
                    origin: "example.com/log/t".into(),
                    size: 11,
                    root: root(&leaves),
                    extensions: Vec::new(),
                }
                .to_text(),
            )
            .unwrap();
        let path = inclusion_proof(&leaves, 4);
        let wire = encode_hashes(&path);
        assert_eq!(decode_hashes(&wire).unwrap(), path);
        let verifier = key.verifier();
        let ok = verify_inclusion_proof(&verifier, leaf_hash(&entries[4]), 4, 11, &path, &note);
        assert_eq!(ok.unwrap().size, 11);
        assert_eq!(
            verify_inclusion_proof(&verifier, leaf_hash(&entries[5]), 4, 11, &path, &note),
            Err(ProofError::WrongRoot)
        );
        assert!(matches!(
            verify_inclusion_proof(&verifier, leaf_hash(&entries[4]), 4, 12, &path, &note),
            Err(ProofError::SizeMismatch {
                proof: 12,
                checkpoint: 11
            })
        ));
        assert!(matches!(
            verify_inclusion_proof(
                &other.verifier(),
                leaf_hash(&entries[4]),
                4,
                11,
                &path,
                &note
            ),
            Err(ProofError::Checkpoint { .. })
        ));
        assert_eq!(
            decode_hashes(&["AAAA".to_string()]),
            Err(ProofError::MalformedHash)
        );
    }
}
