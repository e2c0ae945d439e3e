//! The verifiable log on the wire: logs and their sizes, stored checkpoints, and inclusion
//! and consistency proofs (hashes in standard base64, as in C2SP checkpoints).

use serde::{Deserialize, Serialize};

/// One log and how far it is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogInfo {
    pub tenant: String,
    /// Events committed.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub size: u64,
    /// Tree size of the latest signed checkpoint; null before the first.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub checkpoint_size: Option<u64>,
}

/// Every log of the server (`GET /v1/logs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogList {
    /// In name order.
    pub logs: Vec<LogInfo>,
    /// Pass as `cursor` to read the next page; null on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// One stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckpointEntry {
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub size: u64,
    /// Base64 root hash.
    pub root_hash: String,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub signed_at: String,
    /// The signed note (C2SP tlog-checkpoint in C2SP signed-note form).
    pub note: String,
}

/// A page of stored checkpoints (`GET /v1/logs/{tenant}/checkpoints`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckpointPage {
    pub checkpoints: Vec<CheckpointEntry>,
    /// Pass as `after` for the next page; null on the last page.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub next_after: Option<u64>,
}

/// A consistency proof between two tree sizes (RFC 9162 §2.1.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyProof {
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub from: u64,
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub to: u64,
    /// The proof's hashes, base64.
    pub consistency: Vec<String>,
}

/// An inclusion proof against a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProof {
    /// The event's `seq`.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub leaf_index: u64,
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub tree_size: u64,
    /// RFC 9162 audit path, base64 hashes, nearest the leaf first.
    pub audit_path: Vec<String>,
    /// The signed checkpoint of `tree_size` leaves the path leads to.
    pub checkpoint: String,
}

/// Raw bytes: a hash tile (hashes of 32 bytes each) or an entry bundle (entries behind
/// big-endian uint16 lengths), as C2SP tlog-tiles defines them.
pub struct TileBytes(pub Vec<u8>);

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for TileBytes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some("Raw bytes of a hash tile or an entry bundle"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for TileBytes {}
