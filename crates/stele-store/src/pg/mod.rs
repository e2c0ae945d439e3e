//! The PostgreSQL store: for several Stele nodes on one database. Each node has one writer
//! connection; a batch locks the rows of the logs it touches (in tenant order, so two
//! nodes never deadlock), appends after the committed head, and commits. A node whose
//! cached tree is behind (another node appended) resumes it from the stored tiles.
//!
//! Connections that fail are dropped and opened again on the next call, so the store
//! recovers by itself when the database comes back. Settings (the meta store) live in a
//! table of their own in the same schema.

mod meta;
mod migrate;
mod writer;

use writer::PgWriter;

use crate::{
    LogHead, LogRows, LogStore, LogWriter, Result, StoreError, StoredCheckpoint, StoredEvent,
    stored, tile_from_row,
};
use postgres::{Client, NoTls};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stele_core::Timestamp;
use stele_tlog::tiles::{Tile, TileId};
use uuid::Uuid;

/// Connections kept open for reuse by readers.
const IDLE_READERS: usize = 8;
impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        StoreError::Postgres(Box::new(e))
    }
}

pub struct PgStore {
    config: postgres::Config,
    readers: Mutex<Vec<Client>>,
    writer_taken: Arc<AtomicBool>,
}

fn connect(config: &postgres::Config) -> Result<Client> {
    let mut config = config.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    Ok(config.connect(NoTls)?)
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host/db`) and applies pending migrations.
    pub fn open(url: &str) -> Result<PgStore> {
        let config = postgres::Config::from_str(url)?;
        let mut client = connect(&config)?;
        migrate::migrate(&mut client)?;
        Ok(PgStore {
            config,
            readers: Mutex::new(vec![client]),
            writer_taken: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Connects without migrating, for checking a store: the schema must be current.
    pub fn open_read_only(url: &str) -> Result<PgStore> {
        let config = postgres::Config::from_str(url)?;
        let mut client = connect(&config)?;
        let version = migrate::schema_version(&mut client)?;
        let known = migrate::MIGRATIONS.len() as i32;
        if version != known {
            return Err(StoreError::Corrupt(format!(
                "schema version {version}; this build reads {known} (run `stele migrate`)"
            )));
        }
        Ok(PgStore {
            config,
            readers: Mutex::new(vec![client]),
            writer_taken: Arc::new(AtomicBool::new(true)),
        })
    }

    fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().expect("reader pool poisoned").pop();
        let mut client = match pooled {
            Some(c) if !c.is_closed() => c,
            _ => connect(&self.config)?,
        };
        let result = f(&mut client);
        if !client.is_closed() {
            let mut pool = self.readers.lock().expect("reader pool poisoned");
            if pool.len() < IDLE_READERS {
                pool.push(client);
            }
        }
        result
    }
}

fn read_tile(
    client: &mut impl postgres::GenericClient,
    log_id: i64,
    id: TileId,
) -> Result<Option<Tile>> {
    let Ok(index) = i64::try_from(id.index) else {
        return Ok(None);
    };
    let row = client.query_opt(
        "SELECT width, hashes FROM tiles WHERE log_id = $1 AND level = $2 AND idx = $3
         AND width >= $4 ORDER BY width LIMIT 1",
        &[&log_id, &i16::from(id.level), &index, &(id.width as i16)],
    )?;
    let Some(row) = row else {
        return Ok(None);
    };
    let width: i16 = row.get(0);
    let mut tile = tile_from_row(i64::from(id.level), index, i64::from(width), row.get(1))?;
    tile.hashes.truncate(32 * usize::from(id.width));
    Ok(Some(tile))
}

fn log_id(client: &mut Client, tenant: &str) -> Result<Option<i64>> {
    Ok(client
        .query_opt("SELECT log_id FROM logs WHERE tenant = $1", &[&tenant])?
        .map(|r| r.get(0)))
}

fn checkpoint(row: &postgres::Row) -> Result<StoredCheckpoint> {
    let tenant: String = row.get(0);
    let size: i64 = row.get(1);
    let signed_at = Timestamp::from_micros(row.get(2))
        .ok_or_else(|| StoreError::Corrupt(format!("log {tenant}: bad checkpoint time")))?;
    Ok(StoredCheckpoint {
        tenant,
        size: size as u64,
        signed_at,
        note: row.get(3),
    })
}

impl LogStore for PgStore {
    fn meta(&self) -> &dyn crate::MetaStore {
        self
    }

    fn writer(&self) -> Result<Box<dyn LogWriter>> {
        if self.writer_taken.swap(true, Ordering::SeqCst) {
            return Err(StoreError::Corrupt("a second writer was requested".into()));
        }
        match PgWriter::open(self.config.clone(), self.writer_taken.clone()) {
            Ok(writer) => Ok(Box::new(writer)),
            Err(e) => {
                self.writer_taken.store(false, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    fn heads(&self) -> Result<Vec<LogHead>> {
        self.with_client(|c| {
            let rows = c.query("SELECT tenant, size FROM logs ORDER BY tenant", &[])?;
            Ok(rows.iter().map(head_of).collect())
        })
    }

    fn heads_after(&self, after: &str, limit: usize) -> Result<Vec<LogHead>> {
        self.with_client(|c| {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = c.query(
                "SELECT tenant, size FROM logs WHERE tenant > $1 ORDER BY tenant LIMIT $2",
                &[&after, &limit],
            )?;
            Ok(rows.iter().map(head_of).collect())
        })
    }

    fn read_range(&self, tenant: &str, from: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        self.with_client(|c| {
            let Some(log) = log_id(c, tenant)? else {
                return Ok(Vec::new());
            };
            let from = i64::try_from(from).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = c.query(
                "SELECT seq, leaf_hash, body FROM events WHERE log_id = $1 AND seq >= $2
                 ORDER BY seq LIMIT $3",
                &[&log, &from, &limit],
            )?;
            rows.into_iter()
                .map(|r| stored(r.get(0), r.get(1), r.get(2)))
                .collect()
        })
    }

    fn read_seqs(&self, tenant: &str, seqs: &[u64]) -> Result<Vec<StoredEvent>> {
        self.with_client(|c| {
            let Some(log) = log_id(c, tenant)? else {
                return Ok(Vec::new());
            };
            let wanted: Vec<i64> = seqs.iter().filter_map(|&s| i64::try_from(s).ok()).collect();
            let rows = c.query(
                "SELECT seq, leaf_hash, body FROM events WHERE log_id = $1 AND seq = ANY($2)",
                &[&log, &wanted],
            )?;
            let mut by_seq = HashMap::with_capacity(rows.len());
            for r in rows {
                let event = stored(r.get(0), r.get(1), r.get(2))?;
                by_seq.insert(event.seq, event);
            }
            Ok(seqs.iter().filter_map(|s| by_seq.remove(s)).collect())
        })
    }

    fn get_by_id(&self, tenant: &str, id: Uuid) -> Result<Option<StoredEvent>> {
        self.with_client(|c| {
            let Some(log) = log_id(c, tenant)? else {
                return Ok(None);
            };
            let row = c.query_opt(
                "SELECT e.seq, e.leaf_hash, e.body FROM event_ids x JOIN events e
                   ON e.log_id = x.log_id AND e.seq = x.seq AND e.received_at = x.received_at
                 WHERE x.log_id = $1 AND x.id = $2",
                &[&log, &id],
            )?;
            row.map(|r| stored(r.get(0), r.get(1), r.get(2)))
                .transpose()
        })
    }

    fn ping(&self) -> Result<()> {
        self.with_client(|c| {
            c.simple_query("SELECT 1")?;
            Ok(())
        })
    }

    fn read_tile(&self, tenant: &str, id: TileId) -> Result<Option<Tile>> {
        self.with_client(|c| match log_id(c, tenant)? {
            Some(log) => read_tile(c, log, id),
            None => Ok(None),
        })
    }

    fn scan_tiles(&self, tenant: &str, after: Option<TileId>, limit: usize) -> Result<Vec<Tile>> {
        self.with_client(|c| {
            let Some(log) = log_id(c, tenant)? else {
                return Ok(Vec::new());
            };
            let (level, index, width) = match after {
                Some(id) => (i16::from(id.level), id.index as i64, id.width as i16),
                None => (-1, -1, -1),
            };
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = c.query(
                "SELECT level, idx, width, hashes FROM tiles WHERE log_id = $1
                 AND (level, idx, width) > ($2, $3, $4) ORDER BY level, idx, width LIMIT $5",
                &[&log, &level, &index, &width, &limit],
            )?;
            rows.into_iter()
                .map(|r| {
                    let (level, width): (i16, i16) = (r.get(0), r.get(2));
                    tile_from_row(i64::from(level), r.get(1), i64::from(width), r.get(3))
                })
                .collect()
        })
    }

    fn checkpoints(&self, tenant: &str, after: u64, limit: usize) -> Result<Vec<StoredCheckpoint>> {
        self.with_client(|c| {
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = c.query(
                "SELECT l.tenant, c.size, c.signed_at, c.note FROM checkpoints c
                 JOIN logs l ON l.log_id = c.log_id
                 WHERE l.tenant = $1 AND c.size > $2 ORDER BY c.size, c.checkpoint_id LIMIT $3",
                &[&tenant, &after, &limit],
            )?;
            rows.iter().map(checkpoint).collect()
        })
    }

    fn scan_checkpoints(
        &self,
        tenant: &str,
        offset: u64,
        limit: usize,
    ) -> Result<Vec<StoredCheckpoint>> {
        self.with_client(|c| {
            let offset = i64::try_from(offset).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = c.query(
                "SELECT l.tenant, c.size, c.signed_at, c.note FROM checkpoints c
                 JOIN logs l ON l.log_id = c.log_id
                 WHERE l.tenant = $1 ORDER BY c.size, c.checkpoint_id LIMIT $2 OFFSET $3",
                &[&tenant, &limit, &offset],
            )?;
            rows.iter().map(checkpoint).collect()
        })
    }

    fn read_logs(&self, first: &str, last: &str, max_rows: usize) -> Result<Option<LogRows>> {
        let cap = i64::try_from(max_rows).unwrap_or(i64::MAX - 1) + 1;
        self.with_client(|c| {
            let mut logs = LogRows::new();
            let rows = c.query(
                "SELECT l.tenant, e.seq, e.leaf_hash, e.body FROM logs l
                 JOIN events e ON e.log_id = l.log_id WHERE l.tenant BETWEEN $1 AND $2
                 ORDER BY l.tenant, e.seq LIMIT $3",
                &[&first, &last, &cap],
            )?;
            if rows.len() > max_rows {
                return Ok(None);
            }
            for r in rows {
                let event = stored(r.get(1), r.get(2), r.get(3))?;
                logs.entry(r.get(0)).or_default().events.push(event);
            }
            let rows = c.query(
                "SELECT l.tenant, t.level, t.idx, t.width, t.hashes FROM logs l
                 JOIN tiles t ON t.log_id = l.log_id WHERE l.tenant BETWEEN $1 AND $2
                 ORDER BY l.tenant, t.level, t.idx, t.width LIMIT $3",
                &[&first, &last, &cap],
            )?;
            if rows.len() > max_rows {
                return Ok(None);
            }
            for r in rows {
                let (level, width): (i16, i16) = (r.get(1), r.get(3));
                let tile = tile_from_row(i64::from(level), r.get(2), i64::from(width), r.get(4))?;
                logs.entry(r.get(0)).or_default().tiles.push(tile);
            }
            let rows = c.query(
                "SELECT l.tenant, c.size, c.signed_at, c.note FROM logs l
                 JOIN checkpoints c ON c.log_id = l.log_id WHERE l.tenant BETWEEN $1 AND $2
                 ORDER BY l.tenant, c.size, c.checkpoint_id LIMIT $3",
                &[&first, &last, &cap],
            )?;
            if rows.len() > max_rows {
                return Ok(None);
            }
            for r in &rows {
                let cp = checkpoint(r)?;
                logs.entry(cp.tenant.clone())
                    .or_default()
                    .checkpoints
                    .push(cp);
            }
            Ok(Some(logs))
        })
    }

    fn orphaned_logs(&self) -> Result<Vec<i64>> {
        self.with_client(|c| {
            let rows = c.query(
                "SELECT log_id FROM (SELECT DISTINCT log_id FROM events
                   UNION SELECT log_id FROM event_ids
                   UNION SELECT log_id FROM tiles
                   UNION SELECT log_id FROM checkpoints) AS used
                 WHERE log_id NOT IN (SELECT log_id FROM logs) ORDER BY log_id",
                &[],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn latest_checkpoints(&self) -> Result<Vec<StoredCheckpoint>> {
        // Several nodes sign: the latest is the largest tree, not the last row written.
        self.with_client(|c| {
            let rows = c.query(
                "SELECT DISTINCT ON (l.tenant) l.tenant, c.size, c.signed_at, c.note
                 FROM checkpoints c JOIN logs l ON l.log_id = c.log_id
                 ORDER BY l.tenant, c.size DESC, c.checkpoint_id DESC",
                &[],
            )?;
            rows.iter().map(checkpoint).collect()
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        let clients = std::mem::take(&mut *self.readers.lock().unwrap_or_else(|e| e.into_inner()));
        close_elsewhere(clients);
    }
}

/// Closes connections on a thread of their own: the blocking client's close may not run on
/// an async runtime's thread, where a store may well be dropped.
fn close_elsewhere(clients: Vec<Client>) {
    if !clients.is_empty() {
        let _ = std::thread::Builder::new()
            .name("stele-pg-close".into())
            .spawn(move || drop(clients));
    }
}

/// A row of `SELECT tenant, size FROM logs`.
fn head_of(row: &postgres::Row) -> LogHead {
    LogHead {
        tenant: row.get(0),
        size: row.get::<_, i64>(1) as u64,
    }
}
