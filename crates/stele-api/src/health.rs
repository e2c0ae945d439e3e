//! Liveness and readiness answers.

use serde::{Deserialize, Serialize};

/// `GET /health/live`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Live {
    /// Always `ok`.
    pub status: String,
}

/// `GET /health/ready`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ready {
    /// `ready` or `not_ready`.
    pub status: String,
    /// The store answers.
    pub store: bool,
    /// The writer thread runs and its last commit succeeded.
    pub writer: bool,
    /// Events stored but not yet searchable, over all logs; null if the store is down.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub index_lag: Option<u64>,
    /// Events waiting to be committed.
    pub queued_events: usize,
}
