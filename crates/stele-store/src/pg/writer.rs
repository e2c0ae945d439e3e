//! The PostgreSQL writer: one connection on the sequencer's thread. A batch is one
//! transaction: lock the touched log rows (in tenant order, so nodes never deadlock), take
//! their committed state, sequence, insert events, ids and tiles with one statement each,
//! update the log rows, commit.

use super::migrate::{MONTHS_AHEAD, create_partition, month_of};
use super::{close_elsewhere, connect, read_tile};
use crate::batch::{self, LogState, Row};
use crate::{Appended, LogWriter, NewEvent, Result, StoreError, StoredCheckpoint, TreeHead};
use postgres::{Client, Statement, Transaction};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use stele_core::Timestamp;
use stele_tlog::tiles::TileBuilder;
use uuid::Uuid;

pub(super) struct PgWriter {
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

impl PgWriter {
    /// Connects and loads every log's committed state, so tree heads are known before the
    /// first batch.
    pub(super) fn open(config: postgres::Config, taken: Arc<AtomicBool>) -> Result<PgWriter> {
        let mut writer = PgWriter {
            config,
            client: None,
            logs: HashMap::new(),
            partitions: HashSet::new(),
            statements: HashMap::new(),
            taken,
        };
        writer.run(PgWriter::load_logs)?;
        Ok(writer)
    }

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
        let PgWriter {
            client,
            logs,
            partitions,
            statements,
            ..
        } = self;
        let client = client.as_mut().expect("connected by ensure_partitions");
        let mut tx = BatchTx {
            tx: client.transaction()?,
            statements,
        };
        let tenants: BTreeSet<&str> = batch.iter().map(|e| e.tenant.as_str()).collect();
        let mut locked = tx.lock_logs(&tenants, logs)?;
        let known = tx.stored_ids(batch, &tenants, &locked)?;
        let mut sequenced = batch::sequence(
            batch,
            now,
            |tenant| Ok(locked.remove(tenant).expect("every tenant is locked")),
            |_, state, id| Ok(known.get(&(state.log_id, id)).cloned()),
        )?;
        for month in sequenced.rows.iter().map(|r| month_of(r.received_at)) {
            if !partitions.contains(&month) {
                return Err(StoreError::Corrupt(format!(
                    "no partition for month {month} (is the clock far off?)"
                )));
            }
        }
        tx.insert_events(&sequenced.rows)?;
        tx.store_logs(sequenced.logs.values_mut())?;
        tx.tx.commit()?;
        for (tenant, state) in sequenced.logs {
            logs.insert(tenant.to_string(), state);
        }
        Ok(sequenced.appended)
    }
}

/// One batch's transaction, with the connection's prepared statements.
struct BatchTx<'c, 's> {
    tx: Transaction<'c>,
    statements: &'s mut HashMap<&'static str, Statement>,
}

impl BatchTx<'_, '_> {
    /// The statement for `sql`, parsed and planned once per connection rather than once per
    /// batch: a batch is then one round trip per statement.
    fn prepared(&mut self, sql: &'static str) -> Result<Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.tx.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Locks the rows of `tenants` in tenant order and answers each log's committed state:
    /// the cached one if no other node appended since, else resumed from the stored tiles.
    fn lock_logs<'t>(
        &mut self,
        tenants: &BTreeSet<&'t str>,
        cached: &HashMap<String, LogState>,
    ) -> Result<HashMap<&'t str, LogState>> {
        let mut locked = HashMap::with_capacity(tenants.len());
        for &tenant in tenants {
            // A log this node has seen committed exists: its row is never deleted.
            if !cached.contains_key(tenant) {
                self.tx.execute(
                    "INSERT INTO logs (tenant) VALUES ($1) ON CONFLICT (tenant) DO NOTHING",
                    &[&tenant],
                )?;
            }
            let lock = self.prepared(
                "SELECT log_id, size, last_received_at FROM logs WHERE tenant = $1 FOR UPDATE",
            )?;
            let row = self.tx.query_one(&lock, &[&tenant])?;
            let (log_id, size, last): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
            let state = match cached.get(tenant) {
                Some(s) if s.log_id == log_id && s.size == size as u64 => LogState {
                    last_received_at: received_at(tenant, last)?,
                    ..s.clone()
                },
                _ => resume(&mut self.tx, tenant, log_id, size, last)?,
            };
            locked.insert(tenant, state);
        }
        Ok(locked)
    }

    /// The stored events of the batch's client-chosen ids (retries), one query per log.
    fn stored_ids(
        &mut self,
        batch: &[NewEvent],
        tenants: &BTreeSet<&str>,
        locked: &HashMap<&str, LogState>,
    ) -> Result<HashMap<(i64, Uuid), Appended>> {
        let mut known = HashMap::new();
        for &tenant in tenants {
            let log_id = locked[tenant].log_id;
            let ids: Vec<Uuid> = batch
                .iter()
                .filter(|e| e.client_id && e.tenant == tenant)
                .map(|e| e.id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            let rows = self.tx.query(
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
        Ok(known)
    }

    /// All the batch's events and their ids, one statement each.
    fn insert_events(&mut self, rows: &[Row]) -> Result<()> {
        let log_ids: Vec<i64> = rows.iter().map(|r| r.log_id).collect();
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq as i64).collect();
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let times: Vec<i64> = rows.iter().map(|r| r.received_at.as_micros()).collect();
        let hashes: Vec<&[u8]> = rows.iter().map(|r| &r.leaf_hash.0[..]).collect();
        let bodies: Vec<&[u8]> = rows.iter().map(|r| r.body.as_slice()).collect();
        let insert_events = self.prepared(
            "INSERT INTO events (log_id, seq, id, received_at, leaf_hash, body)
             SELECT l, s, i, timestamptz 'epoch' + r * interval '1 microsecond', h, b
             FROM unnest($1::bigint[], $2::bigint[], $3::uuid[], $4::bigint[], $5::bytea[], $6::bytea[])
                  AS u(l, s, i, r, h, b)",
        )?;
        self.tx.execute(
            &insert_events,
            &[&log_ids, &seqs, &ids, &times, &hashes, &bodies],
        )?;
        // A server-chosen id that is already stored fails the batch here, as on SQLite.
        let insert_ids = self.prepared(
            "INSERT INTO event_ids (log_id, id, seq, received_at)
             SELECT l, i, s, timestamptz 'epoch' + r * interval '1 microsecond'
             FROM unnest($1::bigint[], $2::uuid[], $3::bigint[], $4::bigint[]) AS u(l, i, s, r)",
        )?;
        self.tx
            .execute(&insert_ids, &[&log_ids, &ids, &seqs, &times])?;
        Ok(())
    }

    /// Each grown log's new size and time, and the tiles its tree completed or widened
    /// (one statement for all of them), dropping the narrower rows they extend.
    fn store_logs<'l>(&mut self, logs: impl Iterator<Item = &'l mut LogState>) -> Result<()> {
        let mut tile_logs = Vec::new();
        let mut levels = Vec::new();
        let mut indexes = Vec::new();
        let mut widths = Vec::new();
        let mut contents = Vec::new();
        let update_log =
            self.prepared("UPDATE logs SET size = $2, last_received_at = $3 WHERE log_id = $1")?;
        for state in logs {
            self.tx.execute(
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
        if tile_logs.is_empty() {
            return Ok(());
        }
        let params: [&(dyn postgres::types::ToSql + Sync); 5] =
            [&tile_logs, &levels, &indexes, &widths, &contents];
        let insert_tiles = self.prepared(
            "INSERT INTO tiles (log_id, level, idx, width, hashes)
             SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::smallint[], $5::bytea[])",
        )?;
        self.tx.execute(&insert_tiles, &params)?;
        // The rows these tiles extend are prefixes of them.
        let prune_tiles = self.prepared(
            "DELETE FROM tiles t USING unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::smallint[])
                 AS n(l, lv, i, w)
             WHERE t.log_id = n.l AND t.level = n.lv AND t.idx = n.i AND t.width < n.w",
        )?;
        self.tx.execute(&prune_tiles, &params[..4])?;
        Ok(())
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
