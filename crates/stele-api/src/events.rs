//! Reading events: a page of a filtered listing, and an event with its inclusion proof.

use crate::logs::InclusionProof;
use serde::{Deserialize, Serialize};
use stele_core::Event;

/// A page of events (`GET /v1/events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    /// The events exactly as stored, in the listing's order.
    pub events: Vec<Event>,
    /// Pass as `cursor` to read the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// The last `seq` of the log the search index had when answering; null if it has none.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub indexed_through: Option<u64>,
    /// With `min_seq`: how the wait for the index ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_seq_wait: Option<MinSeqWait>,
}

/// How a read's wait for the search index to reach `min_seq` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MinSeqWait {
    /// The index holds `min_seq`: the answer covers it.
    Reached,
    /// The index did not reach it within 5 s: the answer may not cover it.
    TimedOut,
    /// The log has no event at `min_seq` yet; answered at once without waiting.
    NotAssigned,
}

/// An event with its inclusion proof (`GET /v1/events/{id}?proof=true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvenEvent {
    /// The event exactly as stored; its leaf hash is SHA-256(0x00 ‖ its RFC 8785 bytes).
    pub event: Event,
    pub proof: InclusionProof,
}

/// The answer of `GET /v1/events/{id}`: the event as stored, or with `proof=true` the event
/// and its inclusion proof.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum EventAnswer {
    Proven(ProvenEvent),
    Event(Event),
}
