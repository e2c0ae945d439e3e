//! Stele's wire types: every request and answer body of the HTTP API, and the catalogue of
//! error codes with their HTTP statuses, declared once. The server renders them, the
//! command line, the monitor, the benchmark tool and clients read them.
//!
//! Invariant: no other crate declares a type of the API's bodies; this crate does no I/O
//! and knows no HTTP library (a status is a number here).

pub mod errors;
pub mod events;
pub mod health;
pub mod ingest;
pub mod logs;
pub mod traces;

pub use errors::{ErrorCode, EventError, Problem};
pub use events::{EventAnswer, EventPage, MinSeqWait, ProvenEvent};
pub use health::{Live, Ready};
pub use ingest::{IngestBody, IngestResponse, Receipt};
pub use logs::{
    CheckpointEntry, CheckpointPage, ConsistencyProof, InclusionProof, LogInfo, LogList, TileBytes,
};
pub use stele_core::event::{
    Actor, ActorType, Category, ErrorInfo, Event, Level, Outcome, Resource, Source, Step,
    StepStatus,
};
pub use traces::{Trace, TraceStep};

/// The media type of every error answer (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";
