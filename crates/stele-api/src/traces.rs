//! `GET /v1/traces/{correlation_id}`: every event of one operation, with its steps.

use serde::{Deserialize, Serialize};
use stele_core::{Event, Level, Outcome, StepStatus};

/// One step of a traced operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TraceStep {
    pub name: String,
    /// `step.sequence` of the step's events, when given.
    pub sequence: Option<u32>,
    /// The status of the step's last event that states one.
    pub status: Option<StepStatus>,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub started_at: String,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub ended_at: String,
    /// The reported `duration_ms` of the step's last event that reports one, else the
    /// time between its first and last event.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub duration_ms: u64,
    pub events: usize,
    /// The most severe level among the step's events.
    pub level: Level,
}

/// Every event of one operation, with per-step timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Trace {
    pub correlation_id: String,
    pub tenant: String,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub started_at: String,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub ended_at: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub duration_ms: u64,
    /// The outcome of the last event.
    pub outcome: Option<Outcome>,
    /// Steps with a sequence number in that order, then the others as first seen.
    pub steps: Vec<TraceStep>,
    /// In `seq` order.
    pub events: Vec<Event>,
    /// More than 10,000 events share this correlation id; only the first are here.
    pub truncated: bool,
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub indexed_through: Option<u64>,
    /// With `min_seq`: how the wait for the index ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_seq_wait: Option<crate::MinSeqWait>,
}
