//! The embedded SQLite store: one file in the data directory, WAL mode with
//! `synchronous=FULL`, one writer connection on its own thread, a small reader pool, and a
//! background thread that copies committed WAL frames back into the database file.

use crate::batch::{self, LogState};
use crate::{
    Appended, LogHead, LogStore, LogWriter, NewEvent, Result, StoreError, StoredCheckpoint,
    StoredEvent, TreeHead, leaf, stored, tile_from_row,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use stele_core::Timestamp;
use stele_core::tiles::{Tile, TileBuilder, TileId};
use uuid::Uuid;

/// Versioned schema migrations, applied in order; `PRAGMA user_version` records the last.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_tree.sql"),
    include_str!("../migrations/sqlite/0003_writer_guard.sql"),
    include_str!("../migrations/sqlite/0004_events_rowid.sql"),
];
/// The schema version that added tiles: a store migrated past it gets its tree built.
const TREE_VERSION: usize = 2;

/// Readers kept open for reuse; more are opened under load and closed afterwards.
const IDLE_READERS: usize = 8;

pub struct SqliteStore {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    writer_taken: Arc<AtomicBool>,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            readers: Mutex::new(vec![conn]),
            writer_taken: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Opens an existing store without writing to it (no migration, no writer): for
    /// checking a store that may have been tampered with.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version != known {
            return Err(StoreError::Corrupt(format!(
                "schema version {version}; this build reads {known} (start the server once to migrate)"
            )));
        }
        Ok(SqliteStore {
            path: path.to_path_buf(),
            readers: Mutex::new(vec![conn]),
            writer_taken: Arc::new(AtomicBool::new(true)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().expect("reader pool poisoned").pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(std::time::Duration::from_secs(5))?;
                conn
            }
        };
        let result = f(&conn);
        let mut pool = self.readers.lock().expect("reader pool poisoned");
        if pool.len() < IDLE_READERS {
            pool.push(conn);
        }
        result
    }
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // FULL: the WAL is synced at every commit, so a commit that returned survives power loss.
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
        tx.execute_batch(sql)?;
        if i + 1 == TREE_VERSION {
            build_trees(&tx)?;
        }
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "sqlite store migrated");
    }
    Ok(())
}

/// Builds the tiles of every log from its stored leaf hashes (stores older than the tree).
fn build_trees(conn: &Connection) -> Result<()> {
    let logs: Vec<(i64, i64)> = conn
        .prepare("SELECT log_id, size FROM logs")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (log_id, size) in logs {
        let mut tree = TileBuilder::new();
        let mut stmt =
            conn.prepare("SELECT seq, leaf_hash FROM events WHERE log_id = ?1 ORDER BY seq")?;
        let mut rows = stmt.query([log_id])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            if seq as u64 != tree.size() {
                return Err(StoreError::Corrupt(format!(
                    "log {log_id}: seq {seq} out of place"
                )));
            }
            tree.push(leaf(row.get(1)?)?.into());
            if tree.size().is_multiple_of(65_536) {
                store_tiles(conn, log_id, tree.take_writes())?;
            }
        }
        if tree.size() != size as u64 {
            return Err(StoreError::Corrupt(format!(
                "log {log_id}: size {size} but {} events",
                tree.size()
            )));
        }
        store_tiles(conn, log_id, tree.take_writes())?;
        tracing::info!(log_id, size, "tree built");
    }
    Ok(())
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

fn store_tiles(conn: &Connection, log_id: i64, tiles: Vec<Tile>) -> Result<()> {
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

/// The stored tile `id`: the narrowest row at least as wide, cut to `id.width`.
fn read_tile(conn: &Connection, log_id: i64, id: TileId) -> Result<Option<Tile>> {
    let mut stmt = conn.prepare_cached(
        "SELECT width, hashes FROM tiles WHERE log_id = ?1 AND level = ?2 AND idx = ?3
         AND width >= ?4 ORDER BY width LIMIT 1",
    )?;
    let Ok(index) = i64::try_from(id.index) else {
        return Ok(None);
    };
    let row = stmt
        .query_row(
            params![log_id, i64::from(id.level), index, i64::from(id.width)],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
        )
        .optional()?;
    let Some((width, hashes)) = row else {
        return Ok(None);
    };
    let mut tile = tile_from_row(i64::from(id.level), index, width, hashes)?;
    tile.hashes.truncate(32 * usize::from(id.width));
    Ok(Some(tile))
}

fn checkpoint_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, i64, i64, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn checkpoint(
    (tenant, size, signed_at, note): (String, i64, i64, String),
) -> Result<StoredCheckpoint> {
    let signed_at = Timestamp::from_micros(signed_at)
        .ok_or_else(|| StoreError::Corrupt(format!("log {tenant}: bad checkpoint time")))?;
    Ok(StoredCheckpoint {
        tenant,
        size: size as u64,
        signed_at,
        note,
    })
}

fn log_id(conn: &Connection, tenant: &str) -> Result<Option<i64>> {
    let mut stmt = conn.prepare_cached("SELECT log_id FROM logs WHERE tenant = ?1")?;
    Ok(stmt.query_row([tenant], |r| r.get(0)).optional()?)
}

impl LogStore for SqliteStore {
    fn writer(&self) -> Result<Box<dyn LogWriter>> {
        if self.writer_taken.swap(true, Ordering::SeqCst) {
            return Err(StoreError::Corrupt("a second writer was requested".into()));
        }
        let conn = Connection::open(&self.path)?;
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
        Ok(Box::new(SqliteWriter {
            conn,
            logs,
            wal: WalCopier::start(&self.path)?,
            taken: self.writer_taken.clone(),
        }))
    }

    fn heads(&self) -> Result<Vec<LogHead>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached("SELECT tenant, size FROM logs ORDER BY tenant")?;
            let rows = stmt.query_map([], |r| {
                Ok(LogHead {
                    tenant: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn read_range(&self, tenant: &str, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        self.with_reader(|conn| {
            let Some(log) = log_id(conn, tenant)? else {
                return Ok(Vec::new());
            };
            let mut stmt = conn.prepare_cached(
                "SELECT seq, leaf_hash, body FROM events WHERE log_id = ?1 AND seq >= ?2
                 ORDER BY seq LIMIT ?3",
            )?;
            // Positions beyond i64::MAX cannot exist; clamp rather than wrap.
            let from = i64::try_from(from).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![log, from, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.map(|row| {
                let (seq, hash, body) = row?;
                stored(seq, hash, body)
            })
            .collect()
        })
    }

    fn read_seqs(&self, tenant: &str, seqs: &[u64]) -> Result<Vec<StoredEvent>> {
        self.with_reader(|conn| {
            let Some(log) = log_id(conn, tenant)? else {
                return Ok(Vec::new());
            };
            let mut stmt = conn.prepare_cached(
                "SELECT leaf_hash, body FROM events WHERE log_id = ?1 AND seq = ?2",
            )?;
            let mut out = Vec::with_capacity(seqs.len());
            for &seq in seqs {
                let Ok(seq) = i64::try_from(seq) else {
                    continue;
                };
                let row = stmt
                    .query_row(params![log, seq], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((hash, body)) = row {
                    out.push(stored(seq, hash, body)?);
                }
            }
            Ok(out)
        })
    }

    fn get_by_id(&self, tenant: &str, id: Uuid) -> Result<Option<StoredEvent>> {
        self.with_reader(|conn| {
            let Some(log) = log_id(conn, tenant)? else {
                return Ok(None);
            };
            let mut stmt = conn.prepare_cached(
                "SELECT seq, leaf_hash, body FROM events WHERE log_id = ?1 AND id = ?2",
            )?;
            let row = stmt
                .query_row(params![log, id.as_bytes()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            row.map(|(seq, hash, body)| stored(seq, hash, body))
                .transpose()
        })
    }

    fn ping(&self) -> Result<()> {
        self.with_reader(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
    }

    fn read_tile(&self, tenant: &str, id: TileId) -> Result<Option<Tile>> {
        self.with_reader(|conn| match log_id(conn, tenant)? {
            Some(log) => read_tile(conn, log, id),
            None => Ok(None),
        })
    }

    fn scan_tiles(&self, tenant: &str, after: Option<TileId>, limit: usize) -> Result<Vec<Tile>> {
        self.with_reader(|conn| {
            let Some(log) = log_id(conn, tenant)? else {
                return Ok(Vec::new());
            };
            let mut stmt = conn.prepare_cached(
                "SELECT level, idx, width, hashes FROM tiles WHERE log_id = ?1
                 AND (level, idx, width) > (?2, ?3, ?4) ORDER BY level, idx, width LIMIT ?5",
            )?;
            let (level, index, width) = match after {
                Some(id) => (i64::from(id.level), id.index as i64, i64::from(id.width)),
                None => (-1, -1, -1),
            };
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![log, level, index, width, limit], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.map(|row| {
                let (level, index, width, hashes) = row?;
                tile_from_row(level, index, width, hashes)
            })
            .collect()
        })
    }

    fn checkpoints(&self, tenant: &str, after: u64, limit: usize) -> Result<Vec<StoredCheckpoint>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT l.tenant, c.size, c.signed_at, c.note FROM checkpoints c
                 JOIN logs l ON l.log_id = c.log_id
                 WHERE l.tenant = ?1 AND c.size > ?2 ORDER BY c.size, c.checkpoint_id LIMIT ?3",
            )?;
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![tenant, after, limit], checkpoint_row)?;
            rows.map(|row| checkpoint(row?)).collect()
        })
    }

    fn scan_checkpoints(
        &self,
        tenant: &str,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<StoredCheckpoint>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT l.tenant, c.size, c.signed_at, c.note FROM checkpoints c
                 JOIN logs l ON l.log_id = c.log_id
                 WHERE l.tenant = ?1 ORDER BY c.size, c.checkpoint_id LIMIT ?2 OFFSET ?3",
            )?;
            let offset = i64::try_from(offset).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![tenant, limit, offset], checkpoint_row)?;
            rows.map(|row| checkpoint(row?)).collect()
        })
    }

    fn orphaned_logs(&self) -> Result<Vec<i64>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT log_id FROM (SELECT DISTINCT log_id FROM events
                   UNION SELECT DISTINCT log_id FROM tiles
                   UNION SELECT DISTINCT log_id FROM checkpoints)
                 WHERE log_id NOT IN (SELECT log_id FROM logs) ORDER BY log_id",
            )?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn latest_checkpoints(&self) -> Result<Vec<StoredCheckpoint>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT l.tenant, c.size, c.signed_at, c.note FROM checkpoints c
                 JOIN logs l ON l.log_id = c.log_id
                 WHERE c.checkpoint_id = (SELECT max(checkpoint_id) FROM checkpoints
                                          WHERE log_id = c.log_id)
                 ORDER BY l.tenant",
            )?;
            let rows = stmt.query_map([], checkpoint_row)?;
            rows.map(|row| checkpoint(row?)).collect()
        })
    }
}

struct SqliteWriter {
    conn: Connection,
    logs: HashMap<String, LogState>,
    wal: WalCopier,
    /// Cleared on drop, so a new writer may be opened once this one is gone.
    taken: Arc<AtomicBool>,
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
    fn append(&mut self, batch: &[NewEvent], now: Timestamp) -> Result<Vec<Appended>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Log states change only once the transaction commits.
        let cached = &self.logs;
        let mut sequenced = batch::sequence(
            batch,
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
                    .map(|(seq, hash, body)| batch::retried(tenant, seq, hash, &body))
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
        Ok(sequenced.appended)
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
