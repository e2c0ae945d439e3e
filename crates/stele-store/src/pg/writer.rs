//! The PostgreSQL writer: one connection on the sequencer's thread. A batch is sequenced
//! against the log states this node has cached and sent as one call of `stele_append`
//! (migration 0003), which locks the touched log rows in tenant order, checks that their
//! sizes are still the cached ones, inserts events, ids and tiles and stores the new sizes:
//! one statement, its own transaction, one round trip. If another node appended meanwhile
//! (or stored one of the batch's client-chosen ids), the batch is sequenced again inside a
//! transaction that holds the log rows' locks from the start, after resuming the trees
//! from the stored tiles.

use super::migrate::{MONTHS_AHEAD, create_partition, month_of};
use super::{close_elsewhere, connect, read_tile};
use crate::batch::Found;
use crate::batch::{self, LogState, Row};
use crate::{LogWriter, NewEvent, RequestOutcome, Result, StoreError, StoredCheckpoint, TreeHead};
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

    fn append_batch(
        &mut self,
        batch: &[NewEvent],
        requests: &[usize],
        now: Timestamp,
    ) -> Result<Vec<RequestOutcome>> {
        self.ensure_partitions(now)?;
        let tenants: BTreeSet<&str> = batch.iter().map(|e| e.tenant.as_str()).collect();
        if tenants.iter().all(|t| self.logs.contains_key(*t)) {
            match self.append_optimistically(batch, requests, now, &tenants) {
                Err(e) if is_contended(&e) => {
                    tracing::debug!(error = %e, "another node appended; appending under the log locks");
                }
                done => return done,
            }
        }
        self.append_locked(batch, requests, now, &tenants)
    }

    /// Sequences against the cached log states and appends in one statement, which fails
    /// with SQLSTATE `SL001` if another node appended to one of the logs since.
    fn append_optimistically(
        &mut self,
        batch: &[NewEvent],
        requests: &[usize],
        now: Timestamp,
        tenants: &BTreeSet<&str>,
    ) -> Result<Vec<RequestOutcome>> {
        let PgWriter {
            client,
            logs,
            partitions,
            statements,
            ..
        } = self;
        let client = client.as_mut().expect("connected by ensure_partitions");
        let states = tenants.iter().map(|&t| (t, logs[t].clone())).collect();
        let target = Target {
            statements,
            partitions,
        };
        let (appended, grown) = target.append(client, (batch, requests), now, tenants, states)?;
        for (tenant, state) in grown {
            logs.insert(tenant.to_string(), state);
        }
        Ok(appended)
    }

    /// Appends in a transaction that first locks the touched log rows (in tenant order) and
    /// takes their committed state: the path for logs new to this node, and after another
    /// node appended.
    fn append_locked(
        &mut self,
        batch: &[NewEvent],
        requests: &[usize],
        now: Timestamp,
        tenants: &BTreeSet<&str>,
    ) -> Result<Vec<RequestOutcome>> {
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
        let locked = tx.lock_logs(tenants, logs)?;
        let BatchTx { mut tx, statements } = tx;
        let target = Target {
            statements,
            partitions,
        };
        let (appended, grown) = target.append(&mut tx, (batch, requests), now, tenants, locked)?;
        tx.commit()?;
        for (tenant, state) in grown {
            logs.insert(tenant.to_string(), state);
        }
        Ok(appended)
    }
}

/// What appending needs of the writer besides the connection.
struct Target<'w> {
    statements: &'w mut HashMap<&'static str, Statement>,
    partitions: &'w HashSet<i32>,
}

impl Target<'_> {
    /// Sequences `batch` against `states` (the committed state of every touched log, as
    /// this node takes it) and sends it as one `stele_append` call; answers the receipts
    /// and the logs' states after the batch.
    fn append<'b>(
        self,
        client: &mut impl postgres::GenericClient,
        (batch, requests): (&'b [NewEvent], &[usize]),
        now: Timestamp,
        tenants: &BTreeSet<&str>,
        mut states: HashMap<&'b str, LogState>,
    ) -> Result<(Vec<RequestOutcome>, HashMap<&'b str, LogState>)> {
        let known = stored_ids(client, batch, tenants, &states)?;
        let expected: Vec<(i64, u64)> = tenants
            .iter()
            .map(|t| (states[t].log_id, states[t].size))
            .collect();
        let mut sequenced = batch::sequence(
            batch,
            requests,
            now,
            |tenant| Ok(states.remove(tenant).expect("every tenant has a state")),
            |_, state, id| Ok(known.get(&(state.log_id, id)).cloned()),
        )?;
        check_partitions(&sequenced.rows, self.partitions)?;
        let call = Append::new(&expected, &mut sequenced);
        let statement = prepared(client, self.statements, APPEND)?;
        client.execute(&statement, &call.params())?;
        drop(call);
        Ok((sequenced.outcomes, sequenced.logs))
    }
}

/// The call that appends a batch (see migration 0003).
const APPEND: &str = "SELECT stele_append($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], \
     $5::bigint[], $6::bigint[], $7::uuid[], $8::bigint[], $9::bytea[], $10::bytea[], \
     $11::bigint[], $12::smallint[], $13::bigint[], $14::smallint[], $15::bytea[])";

/// SQLSTATE of `stele_append` when a log grew since the writer read it.
const STALE: &str = "SL001";

/// Another node appended to one of the logs, or stored one of the batch's client-chosen
/// ids, since this node looked: the batch may go again under the logs' locks.
fn is_contended(e: &StoreError) -> bool {
    let StoreError::Postgres(e) = e else {
        return false;
    };
    e.code().is_some_and(|code| {
        code.code() == STALE || *code == postgres::error::SqlState::UNIQUE_VIOLATION
    })
}

fn check_partitions(rows: &[Row], partitions: &HashSet<i32>) -> Result<()> {
    for month in rows.iter().map(|r| month_of(r.received_at)) {
        if !partitions.contains(&month) {
            return Err(StoreError::Corrupt(format!(
                "no partition for month {month} (is the clock far off?)"
            )));
        }
    }
    Ok(())
}

/// The statement for `sql`, parsed and planned once per connection rather than once per
/// batch.
fn prepared(
    client: &mut impl postgres::GenericClient,
    statements: &mut HashMap<&'static str, Statement>,
    sql: &'static str,
) -> Result<Statement> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql)?;
    statements.insert(sql, statement.clone());
    Ok(statement)
}

/// The stored events of the batch's client-chosen ids (retries), one query per log.
fn stored_ids(
    client: &mut impl postgres::GenericClient,
    batch: &[NewEvent],
    tenants: &BTreeSet<&str>,
    states: &HashMap<&str, LogState>,
) -> Result<HashMap<(i64, Uuid), Found>> {
    let mut known = HashMap::new();
    for &tenant in tenants {
        let log_id = states[tenant].log_id;
        let ids: Vec<Uuid> = batch
            .iter()
            .filter(|e| e.client_id && e.tenant == tenant)
            .map(|e| e.id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        let rows = client.query(
            "SELECT x.id, e.seq, e.leaf_hash, e.body FROM event_ids x JOIN events e
               ON e.log_id = x.log_id AND e.seq = x.seq AND e.received_at = x.received_at
             WHERE x.log_id = $1 AND x.id = ANY($2)",
            &[&log_id, &ids],
        )?;
        for r in rows {
            known.insert(
                (log_id, r.get(0)),
                batch::found(tenant, r.get(1), r.get(2), r.get(3))?,
            );
        }
    }
    Ok(known)
}

/// The arguments of one `stele_append` call: the logs (in tenant order) with the sizes they
/// must still have and their new sizes, the events, and the tiles the batch grew.
struct Append<'a> {
    log_ids: Vec<i64>,
    expected: Vec<i64>,
    sizes: Vec<i64>,
    lasts: Vec<i64>,
    e_logs: Vec<i64>,
    e_seqs: Vec<i64>,
    e_ids: Vec<Uuid>,
    e_times: Vec<i64>,
    e_hashes: Vec<&'a [u8]>,
    e_bodies: Vec<&'a [u8]>,
    t_logs: Vec<i64>,
    t_levels: Vec<i16>,
    t_indexes: Vec<i64>,
    t_widths: Vec<i16>,
    t_hashes: Vec<Vec<u8>>,
}

impl<'a> Append<'a> {
    /// `expected`: (log id, size) of each touched log before the batch, in tenant order.
    fn new(expected: &[(i64, u64)], sequenced: &'a mut batch::Sequenced<'_>) -> Append<'a> {
        let by_id: HashMap<i64, &mut LogState> = sequenced
            .logs
            .values_mut()
            .map(|state| (state.log_id, state))
            .collect();
        let mut call = Append {
            log_ids: Vec::with_capacity(expected.len()),
            expected: Vec::with_capacity(expected.len()),
            sizes: Vec::with_capacity(expected.len()),
            lasts: Vec::with_capacity(expected.len()),
            e_logs: Vec::new(),
            e_seqs: Vec::new(),
            e_ids: Vec::new(),
            e_times: Vec::new(),
            e_hashes: Vec::new(),
            e_bodies: Vec::new(),
            t_logs: Vec::new(),
            t_levels: Vec::new(),
            t_indexes: Vec::new(),
            t_widths: Vec::new(),
            t_hashes: Vec::new(),
        };
        let mut by_id = by_id;
        for &(log_id, before) in expected {
            let state = by_id
                .get_mut(&log_id)
                .expect("every touched log is sequenced");
            call.log_ids.push(log_id);
            call.expected.push(before as i64);
            call.sizes.push(state.size as i64);
            call.lasts.push(state.last_received_at.as_micros());
            for tile in state.tree.take_writes() {
                let id = tile.id();
                call.t_logs.push(log_id);
                call.t_levels.push(i16::from(id.level));
                call.t_indexes.push(id.index as i64);
                call.t_widths.push(id.width as i16);
                call.t_hashes.push(tile.hashes);
            }
        }
        let sequenced: &'a batch::Sequenced<'_> = sequenced;
        let rows = &sequenced.rows;
        call.e_logs = rows.iter().map(|r| r.log_id).collect();
        call.e_seqs = rows.iter().map(|r| r.seq as i64).collect();
        call.e_ids = rows.iter().map(|r| r.id).collect();
        call.e_times = rows.iter().map(|r| r.received_at.as_micros()).collect();
        call.e_hashes = rows.iter().map(|r| &r.leaf_hash.0[..]).collect();
        call.e_bodies = rows.iter().map(|r| r.body.as_slice()).collect();
        call
    }

    fn params(&self) -> [&(dyn postgres::types::ToSql + Sync); 15] {
        [
            &self.log_ids,
            &self.expected,
            &self.sizes,
            &self.lasts,
            &self.e_logs,
            &self.e_seqs,
            &self.e_ids,
            &self.e_times,
            &self.e_hashes,
            &self.e_bodies,
            &self.t_logs,
            &self.t_levels,
            &self.t_indexes,
            &self.t_widths,
            &self.t_hashes,
        ]
    }
}

/// One locked batch's transaction, with the connection's prepared statements.
struct BatchTx<'c, 's> {
    tx: Transaction<'c>,
    statements: &'s mut HashMap<&'static str, Statement>,
}

impl BatchTx<'_, '_> {
    fn prepared(&mut self, sql: &'static str) -> Result<Statement> {
        prepared(&mut self.tx, self.statements, sql)
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
    fn append_requests(
        &mut self,
        batch: &[NewEvent],
        requests: &[usize],
        now: Timestamp,
    ) -> Result<Vec<RequestOutcome>> {
        self.run(|w| {
            w.client()?;
            w.append_batch(batch, requests, now)
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
        // A checkpoint row takes a key-share lock on its log's row: take them in tenant
        // order, as appends (of this node and others) do, so that the two never deadlock.
        resolved.sort_by(|a, b| a.1.tenant.cmp(&b.1.tenant));
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
