//! Stele's core: the event model, its validation, and the RFC 8785 canonical encoding whose
//! bytes are stored and hashed into the log.
//!
//! Invariant: this crate does no I/O, spawns no threads, and knows nothing of HTTP, SQL or
//! the Merkle tree (that is `stele-tlog`).

pub mod canonical;
pub mod cursor;
pub mod event;
pub mod exact;
pub mod seal;
pub mod timestamp;
pub mod validate;

pub use event::{
    Actor, ActorType, Category, ErrorInfo, Event, Level, Outcome, Resource, Source, Step,
    StepStatus,
};
pub use seal::{Presealed, SealTime, Seq};
pub use timestamp::Timestamp;
pub use validate::{
    IngestDefaults, Limits, Prepared, ValidationError, prepare, prepare_json, prepare_reserved,
    validate_action, validate_tenant,
};
