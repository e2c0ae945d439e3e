//! What a tamperer with write access to a stopped server's store can do, the same on either
//! backend: the [`Tamper`] trait, for SQLite (`<data>/stele.db`) and for PostgreSQL (a
//! scratch schema).

use super::Backend;
use rusqlite::{Connection, params};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use stele_tlog::leaf_hash;
use stele_tlog::merkle::NodeHash;
use stele_tlog::tiles::{Tile, TileBuilder};
use uuid::Uuid;

/// Runs `f` on the store of `backend` (whose data directory is `data`) on a blocking
/// thread; a panic in `f` fails the test with its own message.
pub async fn tamper<R: Send + 'static>(
    backend: &Backend,
    data: &Path,
    f: impl FnOnce(&mut dyn Tamper) -> R + Send + 'static,
) -> R {
    let (backend, data) = (backend.clone(), data.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let mut db: Box<dyn Tamper> = match &backend {
            Backend::Sqlite => Box::new(SqliteDb::open(&data)),
            Backend::Postgres(schema) => Box::new(PgDb::connect(&schema.url)),
        };
        f(db.as_mut())
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// A stored checkpoint row.
#[derive(Debug, Clone)]
pub struct CheckpointRow {
    pub id: i64,
    pub size: u64,
    pub note: String,
}

/// What a tamperer with write access can do to a store, the same on either backend. Seqs
/// and sizes are those of the log of `tenant`; each method panics if the store refuses,
/// except the `try_*` ones, which answer the refusal.
pub trait Tamper {
    /// What a tamperer does first: disable every append-only trigger (and the foreign
    /// keys) for this connection.
    fn drop_triggers(&mut self);
    fn log_id(&mut self, tenant: &str) -> i64;
    /// One column (`body`, `leaf_hash`) of the event at `seq`.
    fn event_column(&mut self, tenant: &str, seq: u64, column: &str) -> Vec<u8>;
    /// Rewrites the bytes and leaf hash of one event.
    fn set_event(&mut self, tenant: &str, seq: u64, body: &[u8], leaf: &[u8]);
    /// Deletes the events of `seqs` (with their id lookups): how many.
    fn try_delete_events(&mut self, tenant: &str, seqs: Range<u64>) -> Result<u64, String>;
    /// Moves every event from `seq` on one place up, and the log's size with them.
    fn shift_events(&mut self, tenant: &str, from: u64);
    /// Stores a new event (with its id lookup) at the free position `seq`, received when
    /// the event before it was; its leaf hash is computed from `body`.
    fn insert_event(&mut self, tenant: &str, seq: u64, id: Uuid, body: &[u8]);
    fn set_log_size(&mut self, tenant: &str, size: u64);
    fn log_size(&mut self, tenant: &str) -> u64;
    /// Deletes the checkpoints of a log beyond `size`.
    fn delete_checkpoints_beyond(&mut self, tenant: &str, size: u64);
    /// Deletes the `logs` row of `tenant`, leaving its other rows: how many.
    fn try_delete_log(&mut self, tenant: &str) -> Result<u64, String>;
    /// The stored leaf hashes of a log, in seq order.
    fn leaves(&mut self, tenant: &str) -> Vec<NodeHash>;
    fn delete_tiles(&mut self, tenant: &str);
    fn insert_tile(&mut self, tenant: &str, tile: &Tile);
    /// The tile row (level, index) of a log: (width, hashes).
    fn tile(&mut self, tenant: &str, level: u8, index: u64) -> (u16, Vec<u8>);
    fn set_tile(&mut self, tenant: &str, level: u8, index: u64, hashes: &[u8]);
    /// A log's checkpoints in the order `stele verify` numbers them (by size, then id).
    fn checkpoints(&mut self, tenant: &str) -> Vec<CheckpointRow>;
    fn set_note(&mut self, id: i64, note: &str);
    fn set_checkpoint_size(&mut self, id: i64, size: u64);
    fn insert_checkpoint(&mut self, tenant: &str, size: u64, note: &str);
    fn count(&mut self, table: &str) -> u64;

    fn body(&mut self, tenant: &str, seq: u64) -> Vec<u8> {
        self.event_column(tenant, seq, "body")
    }

    fn leaf(&mut self, tenant: &str, seq: u64) -> Vec<u8> {
        self.event_column(tenant, seq, "leaf_hash")
    }

    /// Rewrites an event consistently: its leaf hash is recomputed from the new bytes.
    fn forge_event(&mut self, tenant: &str, seq: u64, body: &[u8]) {
        self.set_event(tenant, seq, body, &leaf_hash(body).0);
    }

    /// Cuts a log back to its first `size` events, as if the rest had never been written:
    /// the events beyond, their checkpoints and the log's size. The tiles are left as they
    /// were (see [`Tamper::rebuild_tiles`]).
    fn cut(&mut self, tenant: &str, size: u64) {
        self.try_delete_events(tenant, size..u64::MAX)
            .unwrap_or_else(|e| panic!("deleting events of {tenant}: {e}"));
        self.delete_checkpoints_beyond(tenant, size);
        self.set_log_size(tenant, size);
    }

    /// Replaces every tile row of a log with the tiles of its stored leaf hashes, so that
    /// the tree agrees with the (tampered) events.
    fn rebuild_tiles(&mut self, tenant: &str) {
        self.delete_tiles(tenant);
        let mut tree = TileBuilder::new();
        for leaf in self.leaves(tenant) {
            tree.push(leaf);
        }
        for tile in tree.take_writes() {
            self.insert_tile(tenant, &tile);
        }
    }

    /// The checkpoint of `tenant` at `size` (the fixture has one per size).
    fn checkpoint_at(&mut self, tenant: &str, size: u64) -> CheckpointRow {
        let all = self.checkpoints(tenant);
        let found: Vec<_> = all.iter().filter(|c| c.size == size).collect();
        assert_eq!(found.len(), 1, "checkpoints of {tenant}: {all:?}");
        found[0].clone()
    }

    /// How `stele verify` names the checkpoint row `id` of `tenant`.
    fn checkpoint_place(&mut self, tenant: &str, id: i64) -> String {
        let all = self.checkpoints(tenant);
        let i = all.iter().position(|c| c.id == id).expect("a stored row");
        format!("log {tenant}, checkpoint #{} (size {})", i + 1, all[i].size)
    }
}

/// A range of seqs as SQL bounds.
fn bounds(seqs: &Range<u64>) -> (i64, i64) {
    let clamp = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
    (clamp(seqs.start), clamp(seqs.end))
}

/// The stopped server's SQLite store (`<data>/stele.db`).
pub struct SqliteDb {
    conn: Connection,
}

impl SqliteDb {
    pub fn open(data: &Path) -> SqliteDb {
        let conn = Connection::open(data.join("stele.db")).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        SqliteDb { conn }
    }

    fn execute(&self, sql: &str, params: impl rusqlite::Params) -> u64 {
        self.conn
            .execute(sql, params)
            .unwrap_or_else(|e| panic!("{sql}: {e}")) as u64
    }
}

impl Tamper for SqliteDb {
    fn drop_triggers(&mut self) {
        // Foreign keys are a per-connection choice in SQLite, and the tamperer's.
        self.conn
            .execute_batch("PRAGMA foreign_keys = OFF")
            .unwrap();
        let names: Vec<String> = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for name in names {
            self.conn
                .execute_batch(&format!("DROP TRIGGER \"{name}\""))
                .unwrap();
        }
    }

    fn log_id(&mut self, tenant: &str) -> i64 {
        self.conn
            .query_row("SELECT log_id FROM logs WHERE tenant = ?1", [tenant], |r| {
                r.get(0)
            })
            .unwrap()
    }

    fn event_column(&mut self, tenant: &str, seq: u64, column: &str) -> Vec<u8> {
        let log = self.log_id(tenant);
        self.conn
            .query_row(
                &format!("SELECT {column} FROM events WHERE log_id = ?1 AND seq = ?2"),
                params![log, seq as i64],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn set_event(&mut self, tenant: &str, seq: u64, body: &[u8], leaf: &[u8]) {
        let log = self.log_id(tenant);
        let n = self.execute(
            "UPDATE events SET body = ?3, leaf_hash = ?4 WHERE log_id = ?1 AND seq = ?2",
            params![log, seq as i64, body, leaf],
        );
        assert_eq!(n, 1);
    }

    fn try_delete_events(&mut self, tenant: &str, seqs: Range<u64>) -> Result<u64, String> {
        let log = self.log_id(tenant);
        let (from, to) = bounds(&seqs);
        self.conn
            .execute(
                "DELETE FROM events WHERE log_id = ?1 AND seq >= ?2 AND seq < ?3",
                params![log, from, to],
            )
            .map(|n| n as u64)
            .map_err(|e| e.to_string())
    }

    fn shift_events(&mut self, tenant: &str, from: u64) {
        let log = self.log_id(tenant);
        // In two steps, so that no position is taken twice on the way.
        self.execute(
            "UPDATE events SET seq = seq + 1000000 WHERE log_id = ?1 AND seq >= ?2",
            params![log, from as i64],
        );
        self.execute(
            "UPDATE events SET seq = seq - 999999 WHERE log_id = ?1 AND seq >= 1000000",
            [log],
        );
        self.execute("UPDATE logs SET size = size + 1 WHERE log_id = ?1", [log]);
    }

    fn insert_event(&mut self, tenant: &str, seq: u64, id: Uuid, body: &[u8]) {
        let log = self.log_id(tenant);
        self.execute(
            "INSERT INTO events (log_id, seq, id, leaf_hash, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                log,
                seq as i64,
                &id.as_bytes()[..],
                &leaf_hash(body).0[..],
                body
            ],
        );
    }

    fn set_log_size(&mut self, tenant: &str, size: u64) {
        let log = self.log_id(tenant);
        let n = self.execute(
            "UPDATE logs SET size = ?2 WHERE log_id = ?1",
            params![log, size as i64],
        );
        assert_eq!(n, 1);
    }

    fn log_size(&mut self, tenant: &str) -> u64 {
        self.conn
            .query_row("SELECT size FROM logs WHERE tenant = ?1", [tenant], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap() as u64
    }

    fn delete_checkpoints_beyond(&mut self, tenant: &str, size: u64) {
        let log = self.log_id(tenant);
        self.execute(
            "DELETE FROM checkpoints WHERE log_id = ?1 AND size > ?2",
            params![log, size as i64],
        );
    }

    fn try_delete_log(&mut self, tenant: &str) -> Result<u64, String> {
        self.conn
            .execute("DELETE FROM logs WHERE tenant = ?1", [tenant])
            .map(|n| n as u64)
            .map_err(|e| e.to_string())
    }

    fn leaves(&mut self, tenant: &str) -> Vec<NodeHash> {
        let log = self.log_id(tenant);
        self.conn
            .prepare("SELECT leaf_hash FROM events WHERE log_id = ?1 ORDER BY seq")
            .unwrap()
            .query_map([log], |r| r.get::<_, Vec<u8>>(0))
            .unwrap()
            .map(|h| NodeHash(h.unwrap().try_into().unwrap()))
            .collect()
    }

    fn delete_tiles(&mut self, tenant: &str) {
        let log = self.log_id(tenant);
        self.execute("DELETE FROM tiles WHERE log_id = ?1", [log]);
    }

    fn insert_tile(&mut self, tenant: &str, tile: &Tile) {
        let log = self.log_id(tenant);
        let id = tile.id();
        self.execute(
            "INSERT INTO tiles (log_id, level, idx, width, hashes) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![log, id.level, id.index as i64, id.width, tile.hashes],
        );
    }

    fn tile(&mut self, tenant: &str, level: u8, index: u64) -> (u16, Vec<u8>) {
        let log = self.log_id(tenant);
        self.conn
            .query_row(
                "SELECT width, hashes FROM tiles WHERE log_id = ?1 AND level = ?2 AND idx = ?3",
                params![log, level, index as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }

    fn set_tile(&mut self, tenant: &str, level: u8, index: u64, hashes: &[u8]) {
        let log = self.log_id(tenant);
        let n = self.execute(
            "UPDATE tiles SET hashes = ?4 WHERE log_id = ?1 AND level = ?2 AND idx = ?3",
            params![log, level, index as i64, hashes],
        );
        assert_eq!(n, 1);
    }

    fn checkpoints(&mut self, tenant: &str) -> Vec<CheckpointRow> {
        let log = self.log_id(tenant);
        self.conn
            .prepare(
                "SELECT checkpoint_id, size, note FROM checkpoints WHERE log_id = ?1
                 ORDER BY size, checkpoint_id",
            )
            .unwrap()
            .query_map([log], |r| {
                Ok(CheckpointRow {
                    id: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    note: r.get(2)?,
                })
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn set_note(&mut self, id: i64, note: &str) {
        let n = self.execute(
            "UPDATE checkpoints SET note = ?2 WHERE checkpoint_id = ?1",
            params![id, note],
        );
        assert_eq!(n, 1);
    }

    fn set_checkpoint_size(&mut self, id: i64, size: u64) {
        let n = self.execute(
            "UPDATE checkpoints SET size = ?2 WHERE checkpoint_id = ?1",
            params![id, size as i64],
        );
        assert_eq!(n, 1);
    }

    fn insert_checkpoint(&mut self, tenant: &str, size: u64, note: &str) {
        let log = self.log_id(tenant);
        self.execute(
            "INSERT INTO checkpoints (log_id, size, signed_at, note) VALUES (?1, ?2, 0, ?3)",
            params![log, size as i64, note],
        );
    }

    fn count(&mut self, table: &str) -> u64 {
        self.conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap() as u64
    }
}

/// The stopped server's PostgreSQL store: its scratch schema, through a superuser
/// connection (the test database's `postgres`), as a tamperer with one would use it. Only
/// ever used on a blocking thread (see [`tamper`]).
pub struct PgDb {
    client: ::postgres::Client,
}

impl PgDb {
    pub fn connect(url: &str) -> PgDb {
        let client = ::postgres::Client::connect(url, ::postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        PgDb { client }
    }

    fn execute(&mut self, sql: &str, params: &[&(dyn ::postgres::types::ToSql + Sync)]) -> u64 {
        self.client
            .execute(sql, params)
            .unwrap_or_else(|e| panic!("{sql}: {}", pg_error(&e)))
    }

    fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ::postgres::types::ToSql + Sync)],
    ) -> ::postgres::Row {
        self.client
            .query_one(sql, params)
            .unwrap_or_else(|e| panic!("{sql}: {}", pg_error(&e)))
    }

    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ::postgres::types::ToSql + Sync)],
    ) -> Vec<::postgres::Row> {
        self.client
            .query(sql, params)
            .unwrap_or_else(|e| panic!("{sql}: {}", pg_error(&e)))
    }
}

/// The server's message for a database error (`stele: events are append-only`).
fn pg_error(e: &::postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_string())
}

impl Tamper for PgDb {
    fn drop_triggers(&mut self) {
        // A superuser's session in replica mode fires no ordinary trigger: neither the
        // append-only ones nor those that enforce the foreign keys.
        self.client
            .batch_execute("SET session_replication_role = replica")
            .unwrap();
    }

    fn log_id(&mut self, tenant: &str) -> i64 {
        self.query_one("SELECT log_id FROM logs WHERE tenant = $1", &[&tenant])
            .get(0)
    }

    fn event_column(&mut self, tenant: &str, seq: u64, column: &str) -> Vec<u8> {
        let log = self.log_id(tenant);
        self.query_one(
            &format!("SELECT {column} FROM events WHERE log_id = $1 AND seq = $2"),
            &[&log, &(seq as i64)],
        )
        .get(0)
    }

    fn set_event(&mut self, tenant: &str, seq: u64, body: &[u8], leaf: &[u8]) {
        let log = self.log_id(tenant);
        let n = self.execute(
            "UPDATE events SET body = $3, leaf_hash = $4 WHERE log_id = $1 AND seq = $2",
            &[&log, &(seq as i64), &body, &leaf],
        );
        assert_eq!(n, 1);
    }

    fn try_delete_events(&mut self, tenant: &str, seqs: Range<u64>) -> Result<u64, String> {
        let log = self.log_id(tenant);
        let (from, to) = bounds(&seqs);
        let n = self
            .client
            .execute(
                "DELETE FROM events WHERE log_id = $1 AND seq >= $2 AND seq < $3",
                &[&log, &from, &to],
            )
            .map_err(|e| pg_error(&e))?;
        self.execute(
            "DELETE FROM event_ids WHERE log_id = $1 AND seq >= $2 AND seq < $3",
            &[&log, &from, &to],
        );
        Ok(n)
    }

    fn shift_events(&mut self, tenant: &str, from: u64) {
        let log = self.log_id(tenant);
        let from = from as i64;
        // In two steps, so that no position is taken twice on the way.
        self.execute(
            "UPDATE events SET seq = seq + 1000000 WHERE log_id = $1 AND seq >= $2",
            &[&log, &from],
        );
        self.execute(
            "UPDATE events SET seq = seq - 999999 WHERE log_id = $1 AND seq >= 1000000",
            &[&log],
        );
        self.execute(
            "UPDATE event_ids SET seq = seq + 1 WHERE log_id = $1 AND seq >= $2",
            &[&log, &from],
        );
        self.execute("UPDATE logs SET size = size + 1 WHERE log_id = $1", &[&log]);
    }

    fn insert_event(&mut self, tenant: &str, seq: u64, id: Uuid, body: &[u8]) {
        let log = self.log_id(tenant);
        let seq = seq as i64;
        let leaf = &leaf_hash(body).0[..];
        let n = self.execute(
            "INSERT INTO events (log_id, seq, id, received_at, leaf_hash, body)
             SELECT log_id, $2::bigint, $3::uuid, received_at, $4::bytea, $5::bytea FROM events
             WHERE log_id = $1 AND seq = $2::bigint - 1",
            &[&log, &seq, &id, &leaf, &body],
        );
        assert_eq!(n, 1);
        self.execute(
            "INSERT INTO event_ids (log_id, id, seq, received_at)
             SELECT log_id, id, seq, received_at FROM events WHERE log_id = $1 AND seq = $2",
            &[&log, &seq],
        );
    }

    fn set_log_size(&mut self, tenant: &str, size: u64) {
        let log = self.log_id(tenant);
        let n = self.execute(
            "UPDATE logs SET size = $2 WHERE log_id = $1",
            &[&log, &(size as i64)],
        );
        assert_eq!(n, 1);
    }

    fn log_size(&mut self, tenant: &str) -> u64 {
        self.query_one("SELECT size FROM logs WHERE tenant = $1", &[&tenant])
            .get::<_, i64>(0) as u64
    }

    fn delete_checkpoints_beyond(&mut self, tenant: &str, size: u64) {
        let log = self.log_id(tenant);
        self.execute(
            "DELETE FROM checkpoints WHERE log_id = $1 AND size > $2",
            &[&log, &(size as i64)],
        );
    }

    fn try_delete_log(&mut self, tenant: &str) -> Result<u64, String> {
        self.client
            .execute("DELETE FROM logs WHERE tenant = $1", &[&tenant])
            .map_err(|e| pg_error(&e))
    }

    fn leaves(&mut self, tenant: &str) -> Vec<NodeHash> {
        let log = self.log_id(tenant);
        self.query(
            "SELECT leaf_hash FROM events WHERE log_id = $1 ORDER BY seq",
            &[&log],
        )
        .iter()
        .map(|r| NodeHash(r.get::<_, Vec<u8>>(0).try_into().unwrap()))
        .collect()
    }

    fn delete_tiles(&mut self, tenant: &str) {
        let log = self.log_id(tenant);
        self.execute("DELETE FROM tiles WHERE log_id = $1", &[&log]);
    }

    fn insert_tile(&mut self, tenant: &str, tile: &Tile) {
        let log = self.log_id(tenant);
        let id = tile.id();
        self.execute(
            "INSERT INTO tiles (log_id, level, idx, width, hashes) VALUES ($1, $2, $3, $4, $5)",
            &[
                &log,
                &i16::from(id.level),
                &(id.index as i64),
                &(id.width as i16),
                &tile.hashes,
            ],
        );
    }

    fn tile(&mut self, tenant: &str, level: u8, index: u64) -> (u16, Vec<u8>) {
        let log = self.log_id(tenant);
        let row = self.query_one(
            "SELECT width, hashes FROM tiles WHERE log_id = $1 AND level = $2 AND idx = $3",
            &[&log, &i16::from(level), &(index as i64)],
        );
        (row.get::<_, i16>(0) as u16, row.get(1))
    }

    fn set_tile(&mut self, tenant: &str, level: u8, index: u64, hashes: &[u8]) {
        let log = self.log_id(tenant);
        let n = self.execute(
            "UPDATE tiles SET hashes = $4 WHERE log_id = $1 AND level = $2 AND idx = $3",
            &[&log, &i16::from(level), &(index as i64), &hashes],
        );
        assert_eq!(n, 1);
    }

    fn checkpoints(&mut self, tenant: &str) -> Vec<CheckpointRow> {
        let log = self.log_id(tenant);
        self.query(
            "SELECT checkpoint_id, size, note FROM checkpoints WHERE log_id = $1
             ORDER BY size, checkpoint_id",
            &[&log],
        )
        .iter()
        .map(|r| CheckpointRow {
            id: r.get(0),
            size: r.get::<_, i64>(1) as u64,
            note: r.get(2),
        })
        .collect()
    }

    fn set_note(&mut self, id: i64, note: &str) {
        let n = self.execute(
            "UPDATE checkpoints SET note = $2 WHERE checkpoint_id = $1",
            &[&id, &note],
        );
        assert_eq!(n, 1);
    }

    fn set_checkpoint_size(&mut self, id: i64, size: u64) {
        let n = self.execute(
            "UPDATE checkpoints SET size = $2 WHERE checkpoint_id = $1",
            &[&id, &(size as i64)],
        );
        assert_eq!(n, 1);
    }

    fn insert_checkpoint(&mut self, tenant: &str, size: u64, note: &str) {
        let log = self.log_id(tenant);
        self.execute(
            "INSERT INTO checkpoints (log_id, size, signed_at, note) VALUES ($1, $2, 0, $3)",
            &[&log, &(size as i64), &note],
        );
    }

    fn count(&mut self, table: &str) -> u64 {
        self.query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .get::<_, i64>(0) as u64
    }
}
