//! The PostgreSQL store: for several Stele nodes on one database. Each node has one writer
//! connection; a batch locks the rows of the logs it touches (in tenant order, so two
//! nodes never deadlock), appends after the committed head, and commits. A node whose
//! cached tree is behind (another node appended) resumes it from the stored tiles.
//!
//! Connections that fail are dropped and opened again on the next call, so the store
//! recovers by itself when the database comes back.

use crate::batch::{self, LogState};
use crate::{
    Appended, LogHead, LogStore, LogWriter, NewEvent, Result, StoreError, StoredCheckpoint,
    StoredEvent, TreeHead, stored, tile_from_row,
};
use postgres::{Client, NoTls, Statement, Transaction};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stele_core::Timestamp;
use stele_core::tiles::{Tile, TileBuilder, TileId};
use uuid::Uuid;

/// Versioned schema migrations, applied in order and recorded in `stele_migrations`.
const MIGRATIONS: &[&str] = &[include_str!("../migrations/postgres/0001_init.sql")];
/// Advisory lock key held while migrating or creating partitions ("stele"; the migration
/// SQL uses the same number).
const LOCK_KEY: i64 = 0x0073_7465_6c65;
/// Connections kept open for reuse by readers.
const IDLE_READERS: usize = 8;
/// Months of partitions kept ready ahead of the current one.
const MONTHS_AHEAD: i32 = 2;

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
        migrate(&mut client)?;
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
        let version = schema_version(&mut client)?;
        let known = MIGRATIONS.len() as i32;
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

fn schema_version(client: &mut Client) -> Result<i32> {
    let exists: bool = client
        .query_one("SELECT to_regclass('stele_migrations') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM stele_migrations",
            &[],
        )?
        .get(0))
}

/// Applies pending migrations under an advisory lock, so that nodes starting together
/// migrate once.
fn migrate(client: &mut Client) -> Result<()> {
    // Current already: nothing to do, and nothing a runtime role without CREATE can't do.
    if schema_version(client)? == MIGRATIONS.len() as i32 {
        return Ok(());
    }
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])?;
    let result = (|| {
        client.batch_execute(
            "CREATE TABLE IF NOT EXISTS stele_migrations (
                 version INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )?;
        let current = schema_version(client)?;
        let known = MIGRATIONS.len() as i32;
        if current > known {
            return Err(StoreError::TooNew {
                found: i64::from(current),
                known: i64::from(known),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let mut tx = client.transaction()?;
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO stele_migrations (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )?;
            tx.commit()?;
            tracing::info!(version = i + 1, "postgres store migrated");
        }
        Ok(())
    })();
    client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])?;
    result
}

/// (year, month) of a time, counted as months since year 0.
fn month_of(t: Timestamp) -> i32 {
    let dt = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.as_micros()) * 1_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    dt.year() * 12 + i32::from(u8::from(dt.month())) - 1
}

/// Creates the monthly partition of `events` for `month` if missing (through a function
/// the schema owner defined, so a runtime role without CREATE can do it).
fn create_partition(client: &mut Client, month: i32) -> Result<()> {
    let first_day = format!("{:04}-{:02}-01", month / 12, month % 12 + 1);
    client.execute(
        "SELECT stele_create_partition($1::text::date)",
        &[&first_day],
    )?;
    Ok(())
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
    fn writer(&self) -> Result<Box<dyn LogWriter>> {
        if self.writer_taken.swap(true, Ordering::SeqCst) {
            return Err(StoreError::Corrupt("a second writer was requested".into()));
        }
        let mut writer = PgWriter {
            config: self.config.clone(),
            client: None,
            logs: HashMap::new(),
            partitions: HashSet::new(),
            statements: HashMap::new(),
            taken: self.writer_taken.clone(),
        };
        writer.run(PgWriter::load_logs)?;
        Ok(Box::new(writer))
    }

    fn heads(&self) -> Result<Vec<LogHead>> {
        self.with_client(|c| {
            let rows = c.query("SELECT tenant, size FROM logs ORDER BY tenant", &[])?;
            Ok(rows
                .iter()
                .map(|r| LogHead {
                    tenant: r.get(0),
                    size: r.get::<_, i64>(1) as u64,
                })
                .collect())
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

struct PgWriter {
    config: postgres::Config,
    /// Opened on first use and again after a failure.
    client: Option<Client>,
    /// The committed state of each log as this node last saw it.
    logs: HashMap<String, LogState>,
    /// Months whose partition is known to exist.
    partitions: HashSet<i32>,
    /// The append path's statements, prepared on the current connection (by their SQL).
    statements: HashMap<&'static str, Statement>,
    taken: Arc<AtomicBool>,
}

impl Drop for PgWriter {
    fn drop(&mut self) {
        self.taken.store(false, Ordering::SeqCst);
        close_elsewhere(self.client.take().into_iter().collect());
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

impl PgWriter {
    fn client(&mut self) -> Result<&mut Client> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.statements.clear();
            self.client = Some(connect(&self.config)?);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Runs `f` on the connection; a failed connection is dropped, to be reopened.
    fn run<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let result = f(self);
        if result.is_err() && self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        result
    }

    /// Reads every log's committed state, so tree heads are known before the first batch.
    fn load_logs(&mut self) -> Result<()> {
        let mut tx = self.client()?.transaction()?;
        let rows = tx.query(
            "SELECT log_id, tenant, size, last_received_at FROM logs",
            &[],
        )?;
        let mut logs = HashMap::with_capacity(rows.len());
        for row in rows {
            let (log_id, tenant, size, last): (i64, String, i64, i64) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            let state = resume(&mut tx, &tenant, log_id, size, last)?;
            logs.insert(tenant, state);
        }
        tx.commit()?;
        self.logs = logs;
        Ok(())
    }

    fn ensure_partitions(&mut self, now: Timestamp) -> Result<()> {
        let month = month_of(now);
        for m in month..=month + MONTHS_AHEAD {
            if !self.partitions.contains(&m) {
                create_partition(self.client()?, m)?;
                self.partitions.insert(m);
            }
        }
        Ok(())
    }

    fn append_batch(&mut self, batch: &[NewEvent], now: Timestamp) -> Result<Vec<Appended>> {
        self.ensure_partitions(now)?;
        let cached = &self.logs;
        let client = self
            .client
            .as_mut()
            .expect("connected by ensure_partitions");
        let statements = &mut self.statements;
        let mut tx = client.transaction()?;
        // Each statement is parsed and planned once per connection, not once per batch: a
        // batch is then one round trip per statement.
        let mut prepared = |tx: &mut Transaction<'_>, sql: &'static str| -> Result<Statement> {
            if let Some(statement) = statements.get(sql) {
                return Ok(statement.clone());
            }
            let statement = tx.prepare(sql)?;
            statements.insert(sql, statement.clone());
            Ok(statement)
        };

        // Lock every touched log, in tenant order, and take its committed state.
        let tenants: BTreeSet<&str> = batch.iter().map(|e| e.tenant.as_str()).collect();
        let mut locked: HashMap<&str, LogState> = HashMap::new();
        for &tenant in &tenants {
            // A log this node has seen committed exists: its row is never deleted.
            if !cached.contains_key(tenant) {
                tx.execute(
                    "INSERT INTO logs (tenant) VALUES ($1) ON CONFLICT (tenant) DO NOTHING",
                    &[&tenant],
                )?;
            }
            let lock = prepared(
                &mut tx,
                "SELECT log_id, size, last_received_at FROM logs WHERE tenant = $1 FOR UPDATE",
            )?;
            let row = tx.query_one(&lock, &[&tenant])?;
            let (log_id, size, last): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
            let state = match cached.get(tenant) {
                Some(s) if s.log_id == log_id && s.size == size as u64 => LogState {
                    last_received_at: received_at(tenant, last)?,
                    ..s.clone()
                },
                // New to this node, or another node appended: resume from the tiles.
                _ => resume(&mut tx, tenant, log_id, size, last)?,
            };
            locked.insert(tenant, state);
        }

        // Stored events with the client-chosen ids of this batch, one query per log.
        let mut known: HashMap<(i64, Uuid), Appended> = HashMap::new();
        for &tenant in &tenants {
            let log_id = locked[tenant].log_id;
            let ids: Vec<Uuid> = batch
                .iter()
                .filter(|e| e.client_id && e.tenant == tenant)
                .map(|e| e.id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let rows = tx.query(
                "SELECT x.id, e.seq, e.leaf_hash, e.body FROM event_ids x JOIN events e
                   ON e.log_id = x.log_id AND e.seq = x.seq AND e.received_at = x.received_at
                 WHERE x.log_id = $1 AND x.id = ANY($2)",
                &[&log_id, &ids],
            )?;
            for r in rows {
                let body: Vec<u8> = r.get(3);
                known.insert(
                    (log_id, r.get(0)),
                    batch::retried(tenant, r.get(1), r.get(2), &body)?,
                );
            }
        }

        let mut sequenced = batch::sequence(
            batch,
            now,
            |tenant| Ok(locked.remove(tenant).expect("every tenant is locked")),
            |_, state, id| Ok(known.get(&(state.log_id, id)).cloned()),
        )?;
        for month in sequenced.rows.iter().map(|r| month_of(r.received_at)) {
            if !self.partitions.contains(&month) {
                return Err(StoreError::Corrupt(format!(
                    "no partition for month {month} (is the clock far off?)"
                )));
            }
        }

        // One statement for all the events, one for all the tiles.
        let rows = &sequenced.rows;
        let log_ids: Vec<i64> = rows.iter().map(|r| r.log_id).collect();
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq as i64).collect();
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let times: Vec<i64> = rows.iter().map(|r| r.received_at.as_micros()).collect();
        let hashes: Vec<&[u8]> = rows.iter().map(|r| &r.leaf_hash.0[..]).collect();
        let bodies: Vec<&[u8]> = rows.iter().map(|r| r.body.as_slice()).collect();
        let insert_events = prepared(
            &mut tx,
            "INSERT INTO events (log_id, seq, id, received_at, leaf_hash, body)
             SELECT l, s, i, timestamptz 'epoch' + r * interval '1 microsecond', h, b
             FROM unnest($1::bigint[], $2::bigint[], $3::uuid[], $4::bigint[], $5::bytea[], $6::bytea[])
                  AS u(l, s, i, r, h, b)",
        )?;
        tx.execute(
            &insert_events,
            &[&log_ids, &seqs, &ids, &times, &hashes, &bodies],
        )?;
        // A server-chosen id that is already stored fails the batch here, as on SQLite.
        let insert_ids = prepared(
            &mut tx,
            "INSERT INTO event_ids (log_id, id, seq, received_at)
             SELECT l, i, s, timestamptz 'epoch' + r * interval '1 microsecond'
             FROM unnest($1::bigint[], $2::uuid[], $3::bigint[], $4::bigint[]) AS u(l, i, s, r)",
        )?;
        tx.execute(&insert_ids, &[&log_ids, &ids, &seqs, &times])?;
        let mut tile_logs = Vec::new();
        let mut levels = Vec::new();
        let mut indexes = Vec::new();
        let mut widths = Vec::new();
        let mut contents = Vec::new();
        let update_log = prepared(
            &mut tx,
            "UPDATE logs SET size = $2, last_received_at = $3 WHERE log_id = $1",
        )?;
        for state in sequenced.logs.values_mut() {
            tx.execute(
                &update_log,
                &[
                    &state.log_id,
                    &(state.size as i64),
                    &state.last_received_at.as_micros(),
                ],
            )?;
            for tile in state.tree.take_writes() {
                let id = tile.id();
                tile_logs.push(state.log_id);
                levels.push(i16::from(id.level));
                indexes.push(id.index as i64);
                widths.push(id.width as i16);
                contents.push(tile.hashes);
            }
        }
        if !tile_logs.is_empty() {
            let params: [&(dyn postgres::types::ToSql + Sync); 5] =
                [&tile_logs, &levels, &indexes, &widths, &contents];
            let insert_tiles = prepared(
                &mut tx,
                "INSERT INTO tiles (log_id, level, idx, width, hashes)
                 SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::smallint[], $5::bytea[])",
            )?;
            tx.execute(&insert_tiles, &params)?;
            // The rows these tiles extend are prefixes of them.
            let prune_tiles = prepared(
                &mut tx,
                "DELETE FROM tiles t USING unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::smallint[])
                     AS n(l, lv, i, w)
                 WHERE t.log_id = n.l AND t.level = n.lv AND t.idx = n.i AND t.width < n.w",
            )?;
            tx.execute(&prune_tiles, &params[..4])?;
        }
        tx.commit()?;
        for (tenant, state) in sequenced.logs {
            self.logs.insert(tenant.to_string(), state);
        }
        Ok(sequenced.appended)
    }
}

fn received_at(tenant: &str, micros: i64) -> Result<Timestamp> {
    Timestamp::from_micros(micros)
        .ok_or_else(|| StoreError::Corrupt(format!("log {tenant}: bad last_received_at")))
}

/// A log's state from its `logs` row and its stored tiles.
fn resume(
    tx: &mut Transaction<'_>,
    tenant: &str,
    log_id: i64,
    size: i64,
    last: i64,
) -> Result<LogState> {
    let tree = TileBuilder::resume(size as u64, |id| {
        read_tile(tx, log_id, id)?
            .ok_or_else(|| StoreError::Corrupt(format!("log {tenant}: {id} is missing")))
    })?;
    Ok(LogState {
        log_id,
        size: size as u64,
        last_received_at: received_at(tenant, last)?,
        tree,
    })
}

impl LogWriter for PgWriter {
    fn append(&mut self, batch: &[NewEvent], now: Timestamp) -> Result<Vec<Appended>> {
        self.run(|w| {
            w.client()?;
            w.append_batch(batch, now)
        })
    }

    fn tree_head(&self, tenant: &str) -> Option<TreeHead> {
        self.logs.get(tenant).map(|state| TreeHead {
            size: state.tree.size(),
            root: state.tree.root(),
        })
    }

    fn add_checkpoints(&mut self, checkpoints: &[StoredCheckpoint]) -> Result<()> {
        let logs = &self.logs;
        let mut resolved = Vec::with_capacity(checkpoints.len());
        for cp in checkpoints {
            let state = logs.get(&cp.tenant).filter(|s| s.size >= cp.size);
            let Some(state) = state else {
                return Err(StoreError::Corrupt(format!(
                    "checkpoint of {} at size {} is beyond the committed log",
                    cp.tenant, cp.size
                )));
            };
            resolved.push((state.log_id, cp));
        }
        self.run(|w| {
            let mut tx: Transaction<'_> = w.client()?.transaction()?;
            for (log_id, cp) in &resolved {
                tx.execute(
                    "INSERT INTO checkpoints (log_id, size, signed_at, note) VALUES ($1, $2, $3, $4)",
                    &[log_id, &(cp.size as i64), &cp.signed_at.as_micros(), &cp.note],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }
}
