//! The verifiable log: the RFC 9162 Merkle tree, its C2SP tlog-tiles, C2SP signed notes
//! and checkpoints with Ed25519 keys, and the construction and checking of inclusion and
//! consistency proofs. Used alike by the server, the store, the verifier and clients.
//!
//! Invariant: this crate knows nothing of events, HTTP, SQL or async runtimes; an entry
//! is a byte string and a log is a sequence of them.

pub mod hash;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod tiles;

pub use hash::{LeafHash, leaf_hash};
pub use merkle::NodeHash;
pub use note::{Checkpoint, NoteError, SignerKey, VerifierKey};
pub use proof::ProofError;
