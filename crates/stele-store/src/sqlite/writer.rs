//! The SQLite writer: one connection on the sequencer's thread that appends each batch in
//! one `BEGIN IMMEDIATE` transaction (events, log sizes and tiles), and a thread of its own
//! that copies committed WAL frames back into the database file.

use super::{configure, read_tile};
use crate::batch::{self, LogState};
use crate::{LogWriter, NewEvent, RequestOutcome, Result, StoreError, StoredCheckpoint, TreeHead};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use stele_core::Timestamp;
use stele_tlog::tiles::{Tile, TileBuilder};

pub(super) struct SqliteWriter {
    conn: Connection,
    logs: HashMap<String, LogState>,
    wal: WalCopier,
    /// Cleared on drop, so a new writer may be opened once this one is gone.
    taken: Arc<AtomicBool>,
}

impl SqliteWriter {
    /// Opens the writer's connection and loads every log's state (its tree's right edge
    /// from the stored tiles: O(log n) reads per log).
    pub(super) fn open(path: &Path, taken: Arc<AtomicBool>) -> Result<SqliteWriter> {
        let conn = Connection::open(path)?;
        configure(&conn)?;
        // Marks this connection as the writer's: the events insert trigger refuses every
        // other connection (see migration 0003).
        conn.create_scalar_function(
            "stele_writer",
            0,
            rusqlite::functions::FunctionFlags::SQLITE_UTF8
                | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
            |_| Ok(true),
        )?;
        let mut logs = HashMap::new();
        {
            let mut stmt =
                conn.prepare("SELECT log_id, tenant, size, last_received_at FROM logs")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            for row in rows {
                let (log_id, tenant, size, last) = row?;
                let last_received_at = Timestamp::from_micros(last).ok_or_else(|| {
                    StoreError::Corrupt(format!("log {tenant}: bad last_received_at"))
                })?;
                let tree = TileBuilder::resume(size as u64, |id| {
                    read_tile(&conn, log_id, id)?.ok_or_else(|| {
                        StoreError::Corrupt(format!("log {tenant}: {id} is missing"))
                    })
                })?;
                logs.insert(
                    tenant,
                    LogState {
                        log_id,
                        size: size as u64,
                        last_received_at,
                        tree,
                    },
                );
            }
        }
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_FRAMES)?;
        Ok(SqliteWriter {
            conn,
            logs,
            wal: WalCopier::start(path)?,
            taken,
        })
    }
}

/// WAL frames after which the writer checkpoints on its own thread (SQLite's default is
/// 1,000). The [`WalCopier`] normally copies all but the newest frames long before: the
/// writer's checkpoint is then short, and completes, so the WAL starts over from its
/// beginning instead of growing under a steady load.
const WRITER_CHECKPOINT_FRAMES: u32 = 4_000;

/// The shortest time between two background checkpoints: each ends with an `fsync` of the
/// database file, which shares the disk with the writer's commits.
const WAL_COPY_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// Copies committed WAL frames back into the database file (a passive checkpoint) on a
/// thread and connection of its own, so that between two commits the writer does not stop
/// to copy thousands of pages. Woken after each commit; stops when dropped.
struct WalCopier {
    wake: Option<mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WalCopier {
    fn start(path: &Path) -> Result<WalCopier> {
        let conn = Connection::open(path)?;
        configure(&conn)?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("stele-wal".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    // Passive: copies what no reader still needs, never waits for a lock.
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(e) = done {
                        tracing::warn!(error = %e, "background WAL checkpoint failed");
                    }
                    std::thread::sleep(WAL_COPY_PAUSE);
                }
            })?;
        Ok(WalCopier {
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// Something was committed: copy it soon (a wake-up already pending covers it).
    fn committed(&self) {
        if let Some(wake) = &self.wake {
            let _ = wake.try_send(());
        }
    }
}

impl Drop for WalCopier {
    fn drop(&mut self) {
        self.wake = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SqliteWriter {
    fn drop(&mut self) {
        self.taken.store(false, Ordering::SeqCst);
    }
}

impl LogWriter for SqliteWriter {
    fn append_requests(
        &mut self,
        batch: &[NewEvent],
        requests: &[usize],
        now: Timestamp,
    ) -> Result<Vec<RequestOutcome>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Log states change only once the transaction commits.
        let cached = &self.logs;
        let mut sequenced = batch::sequence(
            batch,
            requests,
            now,
            |tenant| match cached.get(tenant) {
                Some(state) => Ok(state.clone()),
                None => {
                    tx.execute("INSERT INTO logs (tenant) VALUES (?1)", [tenant])?;
                    Ok(LogState::new(tx.last_insert_rowid()))
                }
            },
            |tenant, state, id| {
                let mut find = tx.prepare_cached(
                    "SELECT seq, leaf_hash, body FROM events WHERE log_id = ?1 AND id = ?2",
                )?;
                let found = find
                    .query_row(params![state.log_id, id.as_bytes()], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, Vec<u8>>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                        ))
                    })
                    .optional()?;
                found
                    .map(|(seq, hash, body)| batch::found(tenant, seq, hash, body))
                    .transpose()
            },
        )?;
        {
            insert_events(&tx, &sequenced.rows)?;
            let mut update = tx.prepare_cached(
                "UPDATE logs SET size = ?2, last_received_at = ?3 WHERE log_id = ?1",
            )?;
            for state in sequenced.logs.values_mut() {
                update.execute(params![
                    state.log_id,
                    state.size as i64,
                    state.last_received_at.as_micros()
                ])?;
                store_tiles(&tx, state.log_id, state.tree.take_writes())?;
            }
        }
        tx.commit()?;
        self.wal.committed();
        for (tenant, state) in sequenced.logs {
            self.logs.insert(tenant.to_string(), state);
        }
        Ok(sequenced.outcomes)
    }

    fn tree_head(&self, tenant: &str) -> Option<TreeHead> {
        self.logs.get(tenant).map(|state| TreeHead {
            size: state.tree.size(),
            root: state.tree.root(),
        })
    }

    fn add_checkpoints(&mut self, checkpoints: &[StoredCheckpoint]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO checkpoints (log_id, size, signed_at, note) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for cp in checkpoints {
                let state = self.logs.get(&cp.tenant).filter(|s| s.size >= cp.size);
                let Some(state) = state else {
                    return Err(StoreError::Corrupt(format!(
                        "checkpoint of {} at size {} is beyond the committed log",
                        cp.tenant, cp.size
                    )));
                };
                insert.execute(params![
                    state.log_id,
                    cp.size as i64,
                    cp.signed_at.as_micros(),
                    cp.note
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// Stores tiles from [`TileBuilder::take_writes`] and drops the narrower rows they extend.
/// Rows per multi-row INSERT: one statement (and one statement journal) per chunk.
const INSERT_CHUNK: usize = 64;

fn insert_events(conn: &Connection, rows: &[batch::Row]) -> Result<()> {
    let sql = |n: usize| {
        let values = vec!["(?, ?, ?, ?, ?)"; n].join(", ");
        format!("INSERT INTO events (log_id, seq, id, leaf_hash, body) VALUES {values}")
    };
    let chunks = rows.chunks_exact(INSERT_CHUNK);
    let rest = chunks.remainder();
    if chunks.len() > 0 {
        let mut insert = conn.prepare_cached(&sql(INSERT_CHUNK))?;
        for chunk in chunks {
            let seqs: Vec<i64> = chunk.iter().map(|r| r.seq as i64).collect();
            let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(INSERT_CHUNK * 5);
            for (row, seq) in chunk.iter().zip(&seqs) {
                params.extend([
                    &row.log_id as &dyn rusqlite::ToSql,
                    seq,
                    row.id.as_bytes(),
                    &row.leaf_hash.0,
                    &row.body,
                ]);
            }
            insert.execute(params.as_slice())?;
        }
    }
    let mut insert = conn.prepare_cached(&sql(1))?;
    for row in rest {
        insert.execute(params![
            row.log_id,
            row.seq as i64,
            row.id.as_bytes(),
            &row.leaf_hash.0[..],
            row.body
        ])?;
    }
    Ok(())
}

pub(super) fn store_tiles(conn: &Connection, log_id: i64, tiles: Vec<Tile>) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO tiles (log_id, level, idx, width, hashes) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut prune = conn.prepare_cached(
        "DELETE FROM tiles WHERE log_id = ?1 AND level = ?2 AND idx = ?3 AND width < ?4",
    )?;
    for tile in tiles {
        let id = tile.id();
        let (level, index, width) = (i64::from(id.level), id.index as i64, i64::from(id.width));
        insert.execute(params![log_id, level, index, width, tile.hashes])?;
        prune.execute(params![log_id, level, index, width])?;
    }
    Ok(())
}
