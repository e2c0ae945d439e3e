//! The log store: the source of truth. Events are kept by (tenant, seq) as their canonical
//! bytes, appended in atomic batches by one writer and read by many readers.
//!
//! Invariant: the store never rewrites or deletes an event; `seq` is dense per log.
//! Invariant: this crate knows nothing of HTTP, async runtimes or the search index.

pub mod sqlite;

use stele_core::{LeafHash, Presealed, Timestamp};
use uuid::Uuid;

/// An event ready to be sequenced into its log.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub tenant: String,
    pub id: Uuid,
    /// The client chose the id, so it may already be stored (an idempotent retry).
    pub client_id: bool,
    pub presealed: Presealed,
}

/// What became of one appended event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    pub received_at: Timestamp,
    pub leaf_hash: LeafHash,
    /// The id was already in the log; nothing was stored and `seq` is the original's.
    pub duplicate: bool,
}

/// An event as stored: its position and canonical bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub leaf_hash: LeafHash,
    pub bytes: Vec<u8>,
}

/// The state of one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHead {
    pub tenant: String,
    /// Number of events; the next `seq`.
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("the store is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "the store was written by a newer version of Stele (schema {found}, this build knows {known})"
    )]
    TooNew { found: i64, known: i64 },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The log store. Methods block: call them from a blocking thread, never an async task.
pub trait LogStore: Send + Sync + 'static {
    /// The single writer. Only one may exist at a time per store.
    fn writer(&self) -> Result<Box<dyn LogWriter>>;
    /// Every log and its size.
    fn heads(&self) -> Result<Vec<LogHead>>;
    /// Events of `tenant` with `seq >= from`, in `seq` order, at most `limit`.
    fn read_range(&self, tenant: &str, from: u64, limit: usize) -> Result<Vec<StoredEvent>>;
    /// The events of `tenant` at the given positions, in the order asked; missing ones skipped.
    fn read_seqs(&self, tenant: &str, seqs: &[u64]) -> Result<Vec<StoredEvent>>;
    /// The event of `tenant` with this id.
    fn get_by_id(&self, tenant: &str, id: Uuid) -> Result<Option<StoredEvent>>;
    /// Checks that the store answers.
    fn ping(&self) -> Result<()>;
}

/// Appends batches. The whole batch is one transaction, durable on disk when this returns.
pub trait LogWriter: Send {
    /// Sequences and stores `batch` (any mix of logs) atomically. `now` is the server time;
    /// `received_at` never decreases within a log. Answers one `Appended` per event, in order.
    fn append(&mut self, batch: &[NewEvent], now: Timestamp) -> Result<Vec<Appended>>;
}
