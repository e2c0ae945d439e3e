//! Sequencing a batch, the same for every backend: the next `seq` of each log, its
//! `received_at`, sealing, leaf hashes, idempotent retries, and the tree's growth. A backend
//! loads (and locks) the log states, inserts the rows, stores the tiles, and commits.

use crate::{Appended, Conflict, Earlier, NewEvent, RequestOutcome, Result, StoreError};
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
    pub outcomes: Vec<RequestOutcome>,
    pub rows: Vec<Row>,
    pub logs: HashMap<&'a str, LogState>,
}

/// A stored event with a client-chosen id: its receipt, and its bytes to compare a retry
/// with.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub appended: Appended,
    pub body: Vec<u8>,
}

/// What a client-chosen id meets before its event is stored.
enum Met {
    /// The id is new.
    Nothing,
    /// The same event, stored or earlier in the batch: answer its receipt.
    Same,
    Conflict(Conflict),
}

/// Sequences `batch`, made of consecutive requests of the sizes `requests`.
/// `state_of(tenant)` gives a log's committed state (called once per log); `find(tenant,
/// log, id)` gives the stored event with a client-chosen id, if any (called once per id).
pub(crate) fn sequence<'a>(
    batch: &'a [NewEvent],
    requests: &[usize],
    now: Timestamp,
    mut state_of: impl FnMut(&'a str) -> Result<LogState>,
    mut find: impl FnMut(&str, &LogState, Uuid) -> Result<Option<Found>>,
) -> Result<Sequenced<'a>> {
    debug_assert_eq!(requests.iter().sum::<usize>(), batch.len());
    let mut logs: HashMap<&str, (LogState, SealTime)> = HashMap::new();
    let mut load =
        |tenant: &'a str, logs: &mut HashMap<&'a str, (LogState, SealTime)>| -> Result<()> {
            if !logs.contains_key(tenant) {
                let mut state = state_of(tenant)?;
                state.last_received_at = state.last_received_at.max(now);
                let time = SealTime::new(state.last_received_at);
                logs.insert(tenant, (state, time));
            }
            Ok(())
        };
    // Every client-chosen id: what the store holds, and the first event of an accepted
    // request that carries it.
    let mut stored: HashMap<(&str, Uuid), Option<Found>> = HashMap::new();
    let mut first: HashMap<(&str, Uuid), usize> = HashMap::new();

    // First the conflicts, so that a refused request leaves no trace in the tree.
    // A refused request's conflict, and the batch position of the event of an earlier
    // request it clashes with (whose seq is known only once that is sequenced).
    let mut refused: Vec<Option<(Conflict, Option<usize>)>> = Vec::with_capacity(requests.len());
    let mut start = 0;
    for &n in requests {
        let mut mine: HashMap<(&str, Uuid), usize> = HashMap::new();
        let mut conflict = None;
        for i in start..start + n {
            let event = &batch[i];
            if !event.client_id {
                continue;
            }
            let key = (event.tenant.as_str(), event.id);
            let mut clash = None;
            let met = if let Some(&j) = first.get(&key) {
                clash = Some(j);
                same_or(event, &batch[j], Earlier::Stored { seq: 0 })
            } else if let Some(&j) = mine.get(&key) {
                same_or(event, &batch[j], Earlier::InRequest { index: j - start })
            } else {
                load(key.0, &mut logs)?;
                let found = match stored.get(&key) {
                    Some(found) => found,
                    None => {
                        let found = find(key.0, &logs[key.0].0, event.id)?;
                        stored.entry(key).or_insert(found)
                    }
                };
                match found {
                    None => Met::Nothing,
                    Some(found) => match event.presealed.is_stored_as(&found.body) {
                        Some(true) => Met::Same,
                        Some(false) => Met::Conflict(Conflict {
                            index: 0,
                            id: event.id,
                            earlier: Earlier::Stored {
                                seq: found.appended.seq,
                            },
                        }),
                        None => {
                            return Err(StoreError::Corrupt(format!(
                                "{}/{}: unreadable body",
                                key.0, found.appended.seq
                            )));
                        }
                    },
                }
            };
            match met {
                Met::Nothing => {
                    mine.insert(key, i);
                }
                Met::Same => {}
                Met::Conflict(c) => {
                    conflict = Some((
                        Conflict {
                            index: i - start,
                            ..c
                        },
                        clash,
                    ));
                    break;
                }
            }
        }
        if conflict.is_none() {
            first.extend(mine);
        }
        refused.push(conflict);
        start += n;
    }

    // Then the accepted requests, in order.
    let mut receipts: Vec<Option<Appended>> = vec![None; batch.len()];
    let mut rows = Vec::with_capacity(batch.len());
    let mut start = 0;
    for (&n, refused) in requests.iter().zip(&refused) {
        let range = start..start + n;
        start += n;
        if refused.is_some() {
            continue;
        }
        for i in range {
            let event = &batch[i];
            let tenant = event.tenant.as_str();
            if event.client_id {
                let key = (tenant, event.id);
                if let Some(Some(found)) = stored.get(&key) {
                    receipts[i] = Some(found.appended.clone());
                    continue;
                }
                // Not stored: the first event of an accepted request with this id goes in.
                let earlier = first[&key];
                if earlier != i {
                    let kept = receipts[earlier].clone().expect("sequenced before");
                    receipts[i] = Some(Appended {
                        duplicate: true,
                        ..kept
                    });
                    continue;
                }
            }
            load(tenant, &mut logs)?;
            let (state, time) = logs.get_mut(tenant).expect("loaded above");
            let seq = state.size;
            let body = event.presealed.seal(seq, time);
            let hash = leaf_hash(&body);
            state.size += 1;
            state.tree.push(hash.into());
            receipts[i] = Some(Appended {
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
    }

    // A clash with an earlier request of the batch names the seq that event got.
    for (conflict, clash) in refused.iter_mut().flatten() {
        if let Some(j) = *clash {
            let seq = receipts[j].as_ref().expect("sequenced").seq;
            conflict.earlier = Earlier::Stored { seq };
        }
    }
    let mut receipts = receipts.into_iter();
    let outcomes = requests
        .iter()
        .zip(refused)
        .map(|(&n, refused)| {
            // Taken whole either way, so that the next request starts at its own events.
            let mine: Vec<Option<Appended>> = receipts.by_ref().take(n).collect();
            match refused {
                Some((conflict, _)) => Err(conflict),
                None => Ok(mine
                    .into_iter()
                    .map(|r| r.expect("every event of an accepted request has a receipt"))
                    .collect()),
            }
        })
        .collect();
    Ok(Sequenced {
        outcomes,
        rows,
        logs: logs.into_iter().map(|(t, (s, _))| (t, s)).collect(),
    })
}

fn same_or(event: &NewEvent, earlier: &NewEvent, clash: Earlier) -> Met {
    if event.presealed.same_event(&earlier.presealed) {
        Met::Same
    } else {
        Met::Conflict(Conflict {
            index: 0,
            id: event.id,
            earlier: clash,
        })
    }
}

/// The receipt of an event already stored: a retry of a client-chosen id.
pub(crate) fn found(tenant: &str, seq: i64, hash: Vec<u8>, body: Vec<u8>) -> Result<Found> {
    let received_at = Event::from_stored(&body)
        .ok()
        .and_then(|e| e.received_at)
        .ok_or_else(|| StoreError::Corrupt(format!("{tenant}/{seq}: unreadable body")))?;
    Ok(Found {
        appended: Appended {
            seq: seq as u64,
            received_at,
            leaf_hash: crate::leaf(hash)?,
            duplicate: true,
        },
        body,
    })
}
