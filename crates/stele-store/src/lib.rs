//! The log store: the source of truth. Events are kept by (tenant, seq) as their canonical
//! bytes, appended in atomic batches by one writer and read by many readers.
//!
//! Invariant: the store never rewrites or deletes an event; `seq` is dense per log.
//! Invariant: the tiles stored with a batch describe the Merkle tree of exactly the events
//! committed with it, and a tile's hashes never change (a partial tile only grows).
//! Invariant: this crate knows nothing of HTTP, async runtimes or the search index.
//!
//! Beside the append-only log, each backend keeps a [`MetaStore`]: settings that are not
//! audit evidence and may change (today which verifier key the log belongs to).

mod batch;
pub mod pg;
pub mod sqlite;

use stele_core::validate::Prepared;
use stele_core::{Presealed, Timestamp};
use stele_tlog::LeafHash;
use stele_tlog::merkle::NodeHash;
use stele_tlog::tiles::{Tile, TileId, TileReader};
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

impl From<Prepared> for NewEvent {
    fn from(p: Prepared) -> NewEvent {
        NewEvent {
            tenant: p.tenant,
            id: p.id,
            client_id: p.client_id,
            presealed: p.presealed,
        }
    }
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

/// A request refused whole because one of its events reuses a client-chosen id with other
/// content; nothing of the request is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {index} of the request: id {id} {earlier}")]
pub struct Conflict {
    /// The event's position in its request.
    pub index: usize,
    pub id: Uuid,
    pub earlier: Earlier,
}

/// The event a conflicting one collides with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Earlier {
    /// Stored (or stored by this same commit) at `seq`.
    Stored { seq: u64 },
    /// An earlier event of the same request, at this position.
    InRequest { index: usize },
}

impl std::fmt::Display for Earlier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Earlier::Stored { seq } => write!(f, "is stored at seq {seq} with a different body"),
            Earlier::InRequest { index } => {
                write!(
                    f,
                    "is also the id of event {index} of the request, with a different body"
                )
            }
        }
    }
}

/// What became of one request of a batch: a receipt per event, or a conflict.
pub type RequestOutcome = std::result::Result<Vec<Appended>, Conflict>;

/// An event as stored: its position and canonical bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub leaf_hash: LeafHash,
    pub bytes: Vec<u8>,
}

/// Every stored row of one log, as [`LogStore::read_logs`] answers it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogContents {
    pub events: Vec<StoredEvent>,
    pub tiles: Vec<Tile>,
    pub checkpoints: Vec<StoredCheckpoint>,
}

/// The rows of several logs, by name; a log with no row of any kind is absent.
pub type LogRows = std::collections::BTreeMap<String, LogContents>;

/// The state of one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHead {
    pub tenant: String,
    /// Number of events; the next `seq`.
    pub size: u64,
}

/// A log's Merkle tree head as the writer holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: NodeHash,
}

/// A signed checkpoint as stored: the C2SP signed-note text and when it was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub tenant: String,
    pub size: u64,
    pub signed_at: Timestamp,
    pub note: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {}", postgres_message(.0))]
    Postgres(Box<postgres::Error>),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("the store is corrupt: {0}")]
    Corrupt(String),
    #[error("conflict: {0}")]
    Conflict(Conflict),
    #[error(
        "the store was written by a newer version of Stele (schema {found}, this build knows {known})"
    )]
    TooNew { found: i64, known: i64 },
}

impl StoreError {
    /// The stored data itself is damaged or inconsistent, so retrying cannot help (as
    /// opposed to a store that is unreachable, busy or shutting down).
    pub fn is_corruption(&self) -> bool {
        match self {
            StoreError::Corrupt(_) => true,
            StoreError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
            ),
            _ => false,
        }
    }
}

/// The server's message where there is one: `postgres::Error` alone says only "db error".
fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The log store. Methods block: call them from a blocking thread, never an async task.
pub trait LogStore: Send + Sync + 'static {
    /// The single writer. Only one may exist at a time per store.
    fn writer(&self) -> Result<Box<dyn LogWriter>>;
    /// Every log and its size.
    fn heads(&self) -> Result<Vec<LogHead>>;
    /// Up to `limit` logs whose names sort after `after` (`""` for the first), in name
    /// order.
    fn heads_after(&self, after: &str, limit: usize) -> Result<Vec<LogHead>>;
    /// Events of `tenant` with `seq >= from`, in `seq` order, at most `limit`.
    fn read_range(&self, tenant: &str, from: u64, limit: usize) -> Result<Vec<StoredEvent>>;
    /// The events of `tenant` at the given positions, in the order asked; missing ones skipped.
    fn read_seqs(&self, tenant: &str, seqs: &[u64]) -> Result<Vec<StoredEvent>>;
    /// The event of `tenant` with this id.
    fn get_by_id(&self, tenant: &str, id: Uuid) -> Result<Option<StoredEvent>>;
    /// Checks that the store answers.
    fn ping(&self) -> Result<()>;

    /// Tile `id` of `tenant`'s tree: the first `id.width` hashes of the tile as stored at
    /// that width or wider. `None` if the tree has not reached it.
    fn read_tile(&self, tenant: &str, id: TileId) -> Result<Option<Tile>>;
    /// Stored tile rows of `tenant` after `after` in (level, index, width) order, at most
    /// `limit`, each at its stored width: what `stele verify` checks.
    fn scan_tiles(&self, tenant: &str, after: Option<TileId>, limit: usize) -> Result<Vec<Tile>>;
    /// Checkpoints of `tenant` with `size > after`, oldest first, at most `limit`.
    fn checkpoints(&self, tenant: &str, after: u64, limit: usize) -> Result<Vec<StoredCheckpoint>>;
    /// The checkpoint signed last for each log that has one.
    fn latest_checkpoints(&self) -> Result<Vec<StoredCheckpoint>>;
    /// Every stored checkpoint row of `tenant`, whatever its size, in (size, insertion)
    /// order from position `offset`: what `stele verify` checks.
    fn scan_checkpoints(
        &self,
        tenant: &str,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<StoredCheckpoint>>;
    /// Log ids that event, tile or checkpoint rows refer to but no log row has: rows a
    /// deleted log row would hide from every other check.
    fn orphaned_logs(&self) -> Result<Vec<i64>>;
    /// Every stored row (events in `seq` order, tiles and checkpoints in the orders of
    /// `scan_tiles` and `scan_checkpoints`) of the logs named `first..=last`, keyed by
    /// name: what `stele verify` checks of many small logs, in three reads instead of
    /// several per log. `None` when those logs hold more than `max_rows` events, tile rows
    /// or checkpoints (read them log by log instead).
    fn read_logs(&self, first: &str, last: &str, max_rows: usize) -> Result<Option<LogRows>>;

    /// The settings kept beside this log.
    fn meta(&self) -> &dyn MetaStore;
}

/// Settings: mutable state kept beside the log, never audit evidence. Methods block.
pub trait MetaStore: Send + Sync {
    /// The value of `name`, if set.
    fn setting(&self, name: &str) -> Result<Option<String>>;
    /// Sets `name` to `value` unless it is set already; answers the value it now has (the
    /// first one ever set, when several nodes race).
    fn init_setting(&self, name: &str, value: &str) -> Result<String>;
    /// Sets `name` to `value`, replacing any earlier value.
    fn put_setting(&self, name: &str, value: &str) -> Result<()>;

    /// The record `id` of `kind` (a JSON document), if stored.
    fn record(&self, kind: &str, id: &str) -> Result<Option<String>>;
    /// Every record of `kind`, by id.
    fn records(&self, kind: &str) -> Result<Vec<(String, String)>>;
    /// Stores a new record; `false` (and nothing changed) if `id` of `kind` exists.
    fn insert_record(&self, kind: &str, id: &str, value: &str) -> Result<bool>;
    /// Stores the record, replacing any earlier value.
    fn put_record(&self, kind: &str, id: &str, value: &str) -> Result<()>;
}

/// The names of the settings the store itself knows.
pub mod settings {
    /// The verifier key (`name+id+key`) whose signing key signs this log's checkpoints.
    pub const VERIFIER_KEY: &str = "log.verifier_key";
}

/// Now, as microseconds since the epoch (when a setting changed).
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Reads complete nodes of `tenant`'s tree of `size` leaves from its stored tiles. A tile
/// the tree needs but the store lacks is corruption.
pub fn tile_reader<'a>(
    store: &'a dyn LogStore,
    tenant: &'a str,
    size: u64,
) -> TileReader<impl FnMut(TileId) -> Result<Tile> + 'a> {
    TileReader::new(size, move |id| {
        store
            .read_tile(tenant, id)?
            .ok_or_else(|| StoreError::Corrupt(format!("log {tenant}: {id} is missing")))
    })
}

/// A stored leaf hash, which must be 32 bytes.
pub(crate) fn leaf(bytes: Vec<u8>) -> Result<LeafHash> {
    let hash: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("a leaf hash is not 32 bytes".into()))?;
    Ok(LeafHash(hash))
}

pub(crate) fn stored(seq: i64, hash: Vec<u8>, bytes: Vec<u8>) -> Result<StoredEvent> {
    Ok(StoredEvent {
        seq: seq as u64,
        leaf_hash: leaf(hash)?,
        bytes,
    })
}

/// Checks that a stored tile row is what its key says: `width` hashes of 32 bytes.
pub fn tile_from_row(level: i64, index: i64, width: i64, hashes: Vec<u8>) -> Result<Tile> {
    let tile = Tile {
        level: u8::try_from(level)
            .map_err(|_| StoreError::Corrupt(format!("tile level {level}")))?,
        index: u64::try_from(index)
            .map_err(|_| StoreError::Corrupt(format!("tile index {index}")))?,
        hashes,
    };
    if hashes_len_ok(&tile, width) {
        Ok(tile)
    } else {
        Err(StoreError::Corrupt(format!(
            "{} holds {} bytes, not {width} hashes",
            tile.id(),
            tile.hashes.len()
        )))
    }
}

fn hashes_len_ok(tile: &Tile, width: i64) -> bool {
    (1..=i64::from(stele_tlog::tiles::TILE_WIDTH)).contains(&width)
        && tile.hashes.len() as i64 == 32 * width
}

/// Appends batches. The whole batch is one transaction, durable on disk when this returns.
pub trait LogWriter: Send {
    /// Sequences and stores `batch` (any mix of logs) atomically. `now` is the server time;
    /// `received_at` never decreases within a log. `requests` are the sizes of the
    /// consecutive requests the batch holds: a request that reuses a client-chosen id with
    /// other content (stored, earlier in the batch, or in itself) is refused whole and the
    /// others stored. Answers one outcome per request, with one `Appended` per event.
    fn append_requests(
        &mut self,
        batch: &[NewEvent],
        requests: &[usize],
        now: Timestamp,
    ) -> Result<Vec<RequestOutcome>>;

    /// [`LogWriter::append_requests`] for a batch that is one request; a conflict is
    /// [`StoreError::Conflict`] and stores nothing.
    fn append(&mut self, batch: &[NewEvent], now: Timestamp) -> Result<Vec<Appended>> {
        let mut outcomes = self.append_requests(batch, &[batch.len()], now)?;
        outcomes
            .pop()
            .unwrap_or(Ok(Vec::new()))
            .map_err(StoreError::Conflict)
    }
    /// The tree head of `tenant` after the last committed batch.
    fn tree_head(&self, tenant: &str) -> Option<TreeHead>;
    /// Stores signed checkpoints, atomically. Each must be for a committed tree size.
    fn add_checkpoints(&mut self, checkpoints: &[StoredCheckpoint]) -> Result<()>;
}
