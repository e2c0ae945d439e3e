//! Sequencing a batch, the same for every backend: the next `seq` of each log, its
//! `received_at`, sealing, leaf hashes, idempotent retries, and the tree's growth. A backend
//! loads (and locks) the log states, inserts the rows, stores the tiles, and commits.

use crate::{Appended, NewEvent, Result, StoreError};
use std::collections::HashMap;
use stele_core::{Event, SealTime, Timestamp};
use stele_tlog::tiles::TileBuilder;
use stele_tlog::{LeafHash, leaf_hash};
use uuid::Uuid;

/// A log as the writer holds it between batches.
#[derive(Debug, Clone)]
pub(crate) struct LogState {
    pub log_id: i64,
    /// Number of events; the next `seq`.
    pub size: u64,
    pub last_received_at: Timestamp,
    /// The tree's right edge and open tiles.
    pub tree: TileBuilder,
}

impl LogState {
    pub fn new(log_id: i64) -> LogState {
        LogState {
            log_id,
            size: 0,
            last_received_at: Timestamp::MIN,
            tree: TileBuilder::new(),
        }
    }
}

/// One event to insert.
pub(crate) struct Row {
    pub log_id: i64,
    pub seq: u64,
    pub id: Uuid,
    pub received_at: Timestamp,
    pub leaf_hash: LeafHash,
    pub body: Vec<u8>,
}

/// The outcome of sequencing a batch: the answers, the rows to insert, and every touched
/// log's state after the batch (its tree holds the tiles still to store).
pub(crate) struct Sequenced<'a> {
    pub appended: Vec<Appended>,
    pub rows: Vec<Row>,
    pub logs: HashMap<&'a str, LogState>,
}

/// Sequences `batch`. `state_of(tenant)` gives a log's committed state (called once per
/// log, in order of first appearance); `find(tenant, log, id)` gives the stored event with a
/// client-chosen id, if any.
pub(crate) fn sequence<'a>(
    batch: &'a [NewEvent],
    now: Timestamp,
    mut state_of: impl FnMut(&'a str) -> Result<LogState>,
    mut find: impl FnMut(&str, &LogState, Uuid) -> Result<Option<Appended>>,
) -> Result<Sequenced<'a>> {
    let mut logs: HashMap<&str, (LogState, SealTime)> = HashMap::new();
    let mut in_batch: HashMap<(&str, Uuid), usize> = HashMap::new();
    let mut appended = Vec::with_capacity(batch.len());
    let mut rows = Vec::with_capacity(batch.len());
    for event in batch {
        let tenant = event.tenant.as_str();
        if !logs.contains_key(tenant) {
            let mut state = state_of(tenant)?;
            state.last_received_at = state.last_received_at.max(now);
            let time = SealTime::new(state.last_received_at);
            logs.insert(tenant, (state, time));
        }
        let (state, time) = logs.get_mut(tenant).expect("inserted above");
        if event.client_id {
            if let Some(&earlier) = in_batch.get(&(tenant, event.id)) {
                let first: &Appended = &appended[earlier];
                appended.push(Appended {
                    duplicate: true,
                    ..first.clone()
                });
                continue;
            }
            if let Some(stored) = find(tenant, state, event.id)? {
                appended.push(stored);
                continue;
            }
            in_batch.insert((tenant, event.id), appended.len());
        }
        let seq = state.size;
        let body = event.presealed.seal(seq, time);
        let hash = leaf_hash(&body);
        state.size += 1;
        state.tree.push(hash.into());
        appended.push(Appended {
            seq,
            received_at: time.timestamp(),
            leaf_hash: hash,
            duplicate: false,
        });
        rows.push(Row {
            log_id: state.log_id,
            seq,
            id: event.id,
            received_at: time.timestamp(),
            leaf_hash: hash,
            body,
        });
    }
    Ok(Sequenced {
        appended,
        rows,
        logs: logs.into_iter().map(|(t, (s, _))| (t, s)).collect(),
    })
}

/// The receipt of an event already stored: a retry of a client-chosen id.
pub(crate) fn retried(tenant: &str, seq: i64, hash: Vec<u8>, body: &[u8]) -> Result<Appended> {
    let received_at = Event::from_stored(body)
        .ok()
        .and_then(|e| e.received_at)
        .ok_or_else(|| StoreError::Corrupt(format!("{tenant}/{seq}: unreadable body")))?;
    Ok(Appended {
        seq: seq as u64,
        received_at,
        leaf_hash: crate::leaf(hash)?,
        duplicate: true,
    })
}
