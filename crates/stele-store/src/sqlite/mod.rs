//! The embedded SQLite store: one file in the data directory, WAL mode with
//! `synchronous=FULL`, one writer connection on its own thread, a small reader pool, and a
//! background thread that copies committed WAL frames back into the database file.
//! Settings (the meta store) live in their own table of the same file.

mod meta;
mod migrate;
mod writer;

use writer::SqliteWriter;

use crate::{
    LogHead, LogRows, LogStore, LogWriter, Result, StoreError, StoredCheckpoint, StoredEvent,
    stored, tile_from_row,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use stele_core::Timestamp;
use stele_tlog::tiles::{Tile, TileId};
use uuid::Uuid;

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
        migrate::migrate(&mut conn)?;
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
        let known = migrate::MIGRATIONS.len() as i64;
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
    fn meta(&self) -> &dyn crate::MetaStore {
        self
    }

    fn writer(&self) -> Result<Box<dyn LogWriter>> {
        if self.writer_taken.swap(true, Ordering::SeqCst) {
            return Err(StoreError::Corrupt("a second writer was requested".into()));
        }
        match SqliteWriter::open(&self.path, self.writer_taken.clone()) {
            Ok(writer) => Ok(Box::new(writer)),
            Err(e) => {
                self.writer_taken.store(false, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    fn heads(&self) -> Result<Vec<LogHead>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached("SELECT tenant, size FROM logs ORDER BY tenant")?;
            let rows = stmt.query_map([], head_of)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn heads_after(&self, after: &str, limit: usize) -> Result<Vec<LogHead>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT tenant, size FROM logs WHERE tenant > ?1 ORDER BY tenant LIMIT ?2",
            )?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![after, limit], head_of)?;
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

    fn read_logs(&self, first: &str, last: &str, max_rows: usize) -> Result<Option<LogRows>> {
        let cap = i64::try_from(max_rows).unwrap_or(i64::MAX - 1) + 1;
        self.with_reader(|conn| {
            let mut logs = LogRows::new();
            let mut stmt = conn.prepare_cached(
                "SELECT l.tenant, e.seq, e.leaf_hash, e.body FROM logs l
                 JOIN events e ON e.log_id = l.log_id WHERE l.tenant BETWEEN ?1 AND ?2
                 ORDER BY l.tenant, e.seq LIMIT ?3",
            )?;
            let mut rows = stmt.query(params![first, last, cap])?;
            let mut count = 0;
            while let Some(r) = rows.next()? {
                count += 1;
                let event = stored(r.get(1)?, r.get(2)?, r.get(3)?)?;
                logs.entry(r.get(0)?).or_default().events.push(event);
            }
            if count > max_rows {
                return Ok(None);
            }
            let mut stmt = conn.prepare_cached(
                "SELECT l.tenant, t.level, t.idx, t.width, t.hashes FROM logs l
                 JOIN tiles t ON t.log_id = l.log_id WHERE l.tenant BETWEEN ?1 AND ?2
                 ORDER BY l.tenant, t.level, t.idx, t.width LIMIT ?3",
            )?;
            let mut rows = stmt.query(params![first, last, cap])?;
            let mut count = 0;
            while let Some(r) = rows.next()? {
                count += 1;
                let tile = tile_from_row(r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)?;
                logs.entry(r.get(0)?).or_default().tiles.push(tile);
            }
            if count > max_rows {
                return Ok(None);
            }
            let mut stmt = conn.prepare_cached(
                "SELECT l.tenant, c.size, c.signed_at, c.note FROM logs l
                 JOIN checkpoints c ON c.log_id = l.log_id WHERE l.tenant BETWEEN ?1 AND ?2
                 ORDER BY l.tenant, c.size, c.checkpoint_id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![first, last, cap], checkpoint_row)?;
            let mut count = 0;
            for row in rows {
                count += 1;
                let cp = checkpoint(row?)?;
                logs.entry(cp.tenant.clone())
                    .or_default()
                    .checkpoints
                    .push(cp);
            }
            Ok((count <= max_rows).then_some(logs))
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

/// A row of `SELECT tenant, size FROM logs`.
fn head_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<LogHead> {
    Ok(LogHead {
        tenant: row.get(0)?,
        size: row.get::<_, i64>(1)? as u64,
    })
}
