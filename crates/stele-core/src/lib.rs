//! Stele's core: the event model, its validation, the RFC 8785 canonical encoding that
//! is hashed into the log, and the catalogue of API error codes.
//!
//! Invariant: this crate does no I/O, spawns no threads, and knows nothing of HTTP or SQL.

pub mod canonical;
pub mod cursor;
pub mod errors;
pub mod event;
pub mod merkle;
pub mod note;
pub mod seal;
pub mod tiles;
pub mod timestamp;
pub mod validate;

pub use errors::ErrorCode;
pub use event::{
    Actor, ActorType, Category, ErrorInfo, Event, Level, Outcome, Resource, Source, Step,
    StepStatus,
};
pub use seal::{LeafHash, Presealed, SealTime, Seq, leaf_hash};
pub use timestamp::Timestamp;
pub use validate::{
    IngestDefaults, Limits, ValidationError, prepare, prepare_json, validate_action,
    validate_tenant,
};
