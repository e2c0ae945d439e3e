//! `POST /v1/events`: what the client gets back for each stored event.

use serde::{Deserialize, Serialize};
use stele_core::Event;
use uuid::Uuid;

/// The body of `POST /v1/events` as JSON: one event or an array of events (NDJSON, one
/// event per line, is accepted too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum IngestBody {
    Many(Vec<Event>),
    One(Box<Event>),
}

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    pub id: Uuid,
    /// The event's position in its log (0-based leaf index of the log's Merkle tree).
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub seq: u64,
    pub tenant: String,
    /// Server time of receipt (RFC 3339, UTC, microseconds).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub received_at: String,
    /// RFC 9162 leaf hash of the stored canonical bytes, base64.
    pub leaf_hash: String,
    /// The id was already stored: nothing new was written and `seq` is the original's.
    pub duplicate: bool,
}

/// The answer to an ingest request: one receipt per event, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestResponse {
    pub receipts: Vec<Receipt>,
}
