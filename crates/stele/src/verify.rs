//! `stele verify --data`: checks a store offline, trusting nothing in it but what the
//! verifier key proves. Every leaf hash is recomputed from the stored bytes, every tree
//! hash from the leaves, and every stored checkpoint must be signed by the key and name
//! the recomputed root at its size.

use crate::report::{Problems, Summary};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::mpsc::{Receiver, SyncSender};
use stele_store::{LogContents, LogHead, LogStore, StoredCheckpoint, StoredEvent};
use stele_tlog::merkle::{EMPTY_ROOT, NodeHash};
use stele_tlog::note::{VerifierKey, verify_checkpoint};
use stele_tlog::tiles::{Tile, TileBuilder, TileId};
use stele_tlog::{LeafHash, leaf_hash};

/// Events read per store call.
const READ_BATCH: usize = 10_000;
/// Tile rows read per store call.
const TILE_BATCH: usize = 1_000;

/// Checks every log of `store` (or only `tenant`), recording each discrepancy.
pub fn verify_store(
    store: &dyn LogStore,
    key: &VerifierKey,
    tenant: Option<&str>,
    problems: &mut Problems,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let heads = store.heads().context("reading the logs")?;
    let heads: Vec<_> = heads
        .into_iter()
        .filter(|h| tenant.is_none_or(|t| t == h.tenant))
        .collect();
    if let Some(t) = tenant
        && heads.is_empty()
    {
        problems.add(t, "log", "no such log in the store");
    }
    if tenant.is_none() {
        for log_id in store.orphaned_logs().context("looking for orphaned rows")? {
            problems.add(
                &format!("#{log_id}"),
                "log",
                "events, tiles or checkpoints of a log that is missing from the logs table",
            );
        }
    }
    let total = heads.iter().map(|h| h.size).sum();
    let bar = progress_bar(total);
    // A large log is checked alone (its stages are parallel); runs of small ones are
    // checked side by side, their findings kept in log order.
    let mut rest = heads.as_slice();
    while let Some(head) = rest.first() {
        if head.size >= READ_BATCH as u64 {
            Log::of(store, key, head, &bar).verify(Rows::Store, problems, summary)?;
            summary.logs += 1;
            rest = &rest[1..];
            continue;
        }
        let run = small_run(rest);
        let (first, last) = (&rest[0].tenant, &rest[run - 1].tenant);
        // The run's rows in three reads, unless a tampered store holds far more rows than
        // its logs record: then log by log.
        let mut loaded = store
            .read_logs(first, last, SMALL_RUN_ROWS)
            .with_context(|| format!("reading logs {first} to {last}"))?;
        let sources: Vec<(&LogHead, Rows)> = rest[..run]
            .iter()
            .map(|head| {
                let rows = match &mut loaded {
                    Some(logs) => Rows::Loaded(logs.remove(&head.tenant).unwrap_or_default()),
                    None => Rows::Store,
                };
                (head, rows)
            })
            .collect();
        let checked: Vec<(Problems, Summary)> = sources
            .into_par_iter()
            .map(|(head, rows)| {
                let (mut found, mut counted) = (Problems::default(), Summary::default());
                Log::of(store, key, head, &bar).verify(rows, &mut found, &mut counted)?;
                anyhow::Ok((found, counted))
            })
            .collect::<anyhow::Result<_>>()?;
        for (found, counted) in checked {
            problems.absorb(found);
            summary.events += counted.events;
            summary.tiles += counted.tiles;
            summary.checkpoints += counted.checkpoints;
            summary.logs += 1;
        }
        rest = &rest[run..];
    }
    bar.finish_and_clear();
    Ok(())
}

/// Small logs checked side by side at a time.
const SMALL_LOGS_AT_ONCE: usize = 1_024;
/// Most events (and most tile rows, and checkpoints) a run of small logs is read with.
const SMALL_RUN_ROWS: usize = 100_000;

/// How many of the logs at the start of `heads` (the first one is small) are read and
/// checked together: small ones, holding at most `SMALL_RUN_ROWS` events together.
fn small_run(heads: &[LogHead]) -> usize {
    let mut events = 0;
    let run = heads
        .iter()
        .take(SMALL_LOGS_AT_ONCE)
        .take_while(|h| {
            events += h.size;
            h.size < READ_BATCH as u64 && events <= SMALL_RUN_ROWS as u64
        })
        .count();
    run.max(1)
}

/// Where a log's rows come from: read from the store as the check goes, or read already.
enum Rows {
    Store,
    Loaded(LogContents),
}

/// One log being checked.
struct Log<'a> {
    store: &'a dyn LogStore,
    key: &'a VerifierKey,
    tenant: &'a str,
    /// The size its log row records.
    recorded_size: u64,
    bar: &'a ProgressBar,
}

pub fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events ({per_sec}, {eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Where an event's bytes say it belongs. Only these two fields are read (the rest is
/// skipped, not built): the leaf hash already covers every byte, and this keeps the scan
/// close to the speed of hashing.
#[derive(serde::Deserialize)]
struct Position<'a> {
    seq: Option<u64>,
    #[serde(borrow)]
    tenant: Option<std::borrow::Cow<'a, str>>,
}

/// An event's recomputed leaf hash, and the `seq` its bytes state and whether they name the
/// log's tenant (or why they could not be read).
type Checked = (LeafHash, Result<(Option<u64>, bool), String>);

/// A stored checkpoint whose signature checked out.
struct Signed {
    size: u64,
    root: NodeHash,
    place: String,
}

impl<'a> Log<'a> {
    fn of(
        store: &'a dyn LogStore,
        key: &'a VerifierKey,
        head: &'a LogHead,
        bar: &'a ProgressBar,
    ) -> Log<'a> {
        Log {
            store,
            key,
            tenant: &head.tenant,
            recorded_size: head.size,
            bar,
        }
    }

    fn verify(
        &self,
        rows: Rows,
        problems: &mut Problems,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        let Log {
            store,
            key,
            tenant,
            recorded_size,
            bar,
        } = *self;
        bar.set_message(tenant.to_string());
        let (events, stored_checkpoints, tiles) = match rows {
            Rows::Store => (None, stored_checkpoints(store, tenant)?, None),
            Rows::Loaded(log) => (Some(log.events), log.checkpoints, Some(log.tiles)),
        };
        let checkpoints = signed_checkpoints(stored_checkpoints, key, tenant, problems, summary);
        let mut roots = RootCheck {
            tenant,
            pending: checkpoints.iter().peekable(),
        };
        let mut tree = TileBuilder::new();
        let mut tiles = TileCheck::new(store, tenant, tiles);
        roots.at(&tree, problems);

        let mut expected_seq: u64 = 0;
        let mut take =
            |events: Vec<StoredEvent>, checked: Vec<Checked>, problems: &mut Problems| {
                for (stored, (leaf, position)) in events.iter().zip(checked) {
                    check_position(tenant, stored, expected_seq, position, problems);
                    check_leaf(tenant, stored, leaf, problems);
                    // The seq the next stored event should have; a gap is reported once, not at
                    // every later event.
                    expected_seq = stored.seq + 1;
                    tree.push(leaf.into());
                    roots.at(&tree, problems);
                }
                for tile in tree.take_writes() {
                    tiles.expect(tile, problems)?;
                }
                summary.events += events.len() as u64;
                bar.inc(events.len() as u64);
                anyhow::Ok(())
            };
        if let Some(events) = events {
            let checked = events.iter().map(|e| check_bytes(tenant, e)).collect();
            take(events, checked, problems)?;
        } else if recorded_size < READ_BATCH as u64 {
            // A small log read on its own: read and checked on this thread, in as many
            // batches as the store holds.
            let mut next = 0;
            loop {
                let events = store
                    .read_range(tenant, next, READ_BATCH)
                    .with_context(|| format!("reading log {tenant}"))?;
                let Some(last) = events.last() else { break };
                next = last.seq + 1;
                let checked = events.iter().map(|e| check_bytes(tenant, e)).collect();
                take(events, checked, problems)?;
            }
        } else {
            // Three stages overlap: one thread reads batches from the store, the next hashes
            // and parses each batch's events in parallel, and this one builds the tree in order.
            std::thread::scope(|scope| -> anyhow::Result<()> {
                let (read_tx, read_rx) = std::sync::mpsc::sync_channel(2);
                let (checked_tx, checked_rx) = std::sync::mpsc::sync_channel(2);
                scope.spawn(move || read_stage(store, tenant, read_tx));
                scope.spawn(move || hash_stage(tenant, read_rx, checked_tx));
                for batch in checked_rx {
                    let (events, checked) = batch?;
                    if events.is_empty() {
                        break;
                    }
                    take(events, checked, problems)?;
                }
                Ok(())
            })?;
        }
        let size = tree.size();
        if size != recorded_size {
            problems.add(
                tenant,
                "log",
                format!("the log records {recorded_size} events but {size} are stored"),
            );
        }
        for cp in roots.pending {
            problems.add(
                tenant,
                &cp.place,
                format!("signed for {} events but the log holds {size}", cp.size),
            );
        }
        summary.tiles += tiles.finish(size, problems)?;
        Ok(())
    }
}

/// A batch as read, and each event's leaf hash and what its bytes say of its position.
type Read = anyhow::Result<Vec<StoredEvent>>;
type CheckedBatch = anyhow::Result<(Vec<StoredEvent>, Vec<Checked>)>;

/// Stage one: reads the log in batches, in `seq` order, until the end or an error.
fn read_stage(store: &dyn LogStore, tenant: &str, out: SyncSender<Read>) {
    let mut next = 0;
    loop {
        let read = store
            .read_range(tenant, next, READ_BATCH)
            .with_context(|| format!("reading log {tenant}"));
        let done = match &read {
            Ok(events) => match events.last() {
                Some(last) => {
                    next = last.seq + 1;
                    false
                }
                None => true,
            },
            Err(_) => true,
        };
        if out.send(read).is_err() || done {
            return;
        }
    }
}

/// Stage two: hashes and parses each batch's events, in parallel.
fn hash_stage(tenant: &str, input: Receiver<Read>, out: SyncSender<CheckedBatch>) {
    for read in input {
        let checked = read.map(|events| {
            let checked: Vec<Checked> = events
                .par_iter()
                .map(|stored| check_bytes(tenant, stored))
                .collect();
            (events, checked)
        });
        if out.send(checked).is_err() {
            return;
        }
    }
}

/// An event's leaf hash, and what its bytes say of its position.
fn check_bytes(tenant: &str, stored: &StoredEvent) -> Checked {
    let position = serde_json::from_slice::<Position>(&stored.bytes)
        .map(|p| (p.seq, p.tenant.as_deref() == Some(tenant)))
        .map_err(|e| e.to_string());
    (leaf_hash(&stored.bytes), position)
}

/// The stored event is where it should be: the next `seq`, and its bytes name that seq
/// and this log.
fn check_position(
    tenant: &str,
    stored: &StoredEvent,
    expected_seq: u64,
    position: Result<(Option<u64>, bool), String>,
    problems: &mut Problems,
) {
    let place = || format!("seq {}", stored.seq);
    if stored.seq > expected_seq {
        let gap = if stored.seq - expected_seq == 1 {
            format!("seq {expected_seq}")
        } else {
            format!("seq {expected_seq}–{}", stored.seq - 1)
        };
        problems.add(
            tenant,
            &gap,
            format!("missing: the next stored event is seq {}", stored.seq),
        );
    }
    if stored.seq < expected_seq {
        problems.add(tenant, &place(), "stored more than once, or out of order");
    }
    match position {
        Ok((seq, same_tenant)) => {
            if seq != Some(stored.seq) {
                problems.add(
                    tenant,
                    &place(),
                    format!("the event's bytes say seq {seq:?}"),
                );
            }
            if !same_tenant {
                let said = serde_json::from_slice::<Position>(&stored.bytes)
                    .ok()
                    .and_then(|p| p.tenant.map(|t| t.into_owned()));
                problems.add(
                    tenant,
                    &place(),
                    format!("the event's bytes say tenant {said:?}"),
                );
            }
        }
        Err(e) => problems.add(tenant, &place(), format!("unreadable event: {e}")),
    }
}

/// The stored leaf hash is the hash of the stored bytes.
fn check_leaf(tenant: &str, stored: &StoredEvent, leaf: LeafHash, problems: &mut Problems) {
    if leaf != stored.leaf_hash {
        problems.add(
            tenant,
            &format!("seq {}", stored.seq),
            format!(
                "stored leaf hash {:?} but the bytes hash to {leaf:?}",
                stored.leaf_hash
            ),
        );
    }
}

/// The signed checkpoints not yet reached, checked against the tree as it grows.
struct RootCheck<'a> {
    tenant: &'a str,
    pending: std::iter::Peekable<std::slice::Iter<'a, Signed>>,
}

impl RootCheck<'_> {
    /// Checks every checkpoint of the tree's current size against its root.
    fn at(&mut self, tree: &TileBuilder, problems: &mut Problems) {
        while let Some(cp) = self.pending.next_if(|cp| cp.size == tree.size()) {
            let root = tree.root();
            if cp.root != root {
                problems.add(
                    self.tenant,
                    &cp.place,
                    format!("signed root {:?} but the events give {root:?}", cp.root),
                );
            }
        }
    }
}

/// Every stored checkpoint row of `tenant`.
fn stored_checkpoints(store: &dyn LogStore, tenant: &str) -> anyhow::Result<Vec<StoredCheckpoint>> {
    const PAGE: usize = 1_000;
    let mut all: Vec<StoredCheckpoint> = Vec::new();
    loop {
        let page = store.scan_checkpoints(tenant, all.len() as u64, PAGE)?;
        let done = page.len() < PAGE;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

/// The stored checkpoints of `tenant` whose signatures verify, sorted by size; the others
/// are problems.
fn signed_checkpoints(
    all: Vec<StoredCheckpoint>,
    key: &VerifierKey,
    tenant: &str,
    problems: &mut Problems,
    summary: &mut Summary,
) -> Vec<Signed> {
    // A size-0 checkpoint is never issued; one stored would be forged, and is checked too.
    // Signatures are most of the work when logs are many and small: check them in parallel.
    let verified: Vec<_> = all
        .par_iter()
        .map(|stored| verify_checkpoint(&stored.note, key))
        .collect();
    let mut signed = Vec::with_capacity(all.len());
    for (i, (stored, verified)) in all.iter().zip(verified).enumerate() {
        summary.checkpoints += 1;
        let place = format!("checkpoint #{} (size {})", i + 1, stored.size);
        match verified {
            Err(e) => problems.add(tenant, &place, format!("not signed by {}: {e}", key.name())),
            Ok(cp) => {
                if !cp.origin.ends_with(&format!("/{tenant}")) {
                    problems.add(
                        tenant,
                        &place,
                        format!("origin `{}` is not this log's", cp.origin),
                    );
                } else if cp.size != stored.size {
                    problems.add(
                        tenant,
                        &place,
                        format!(
                            "the note is for size {}, stored as {}",
                            cp.size, stored.size
                        ),
                    );
                } else if cp.size == 0 && cp.root != EMPTY_ROOT {
                    problems.add(tenant, &place, "an empty tree with a non-empty root");
                } else {
                    signed.push(Signed {
                        size: cp.size,
                        root: cp.root,
                        place,
                    });
                }
            }
        }
    }
    signed.sort_by_key(|s| s.size);
    signed
}

/// Compares the stored tile rows with the tiles recomputed from the events. Level-0 rows
/// are compared as the events stream by; the few higher tiles are kept until the end.
struct TileCheck<'a> {
    store: &'a dyn LogStore,
    tenant: &'a str,
    /// Stored rows read but not yet compared, in (level, index, width) order.
    rows: std::collections::VecDeque<Tile>,
    after: Option<TileId>,
    exhausted: bool,
    /// Recomputed full level-0 tiles are checked at once; everything else waits here.
    upper: BTreeMap<(u8, u64), Tile>,
    checked: u64,
}

impl<'a> TileCheck<'a> {
    /// Compares against `tenant`'s stored rows: `loaded`, or read from `store` as needed.
    fn new(store: &'a dyn LogStore, tenant: &'a str, loaded: Option<Vec<Tile>>) -> Self {
        let exhausted = loaded.is_some();
        TileCheck {
            store,
            tenant,
            rows: loaded.unwrap_or_default().into(),
            after: None,
            exhausted,
            upper: BTreeMap::new(),
            checked: 0,
        }
    }

    /// The next stored row, if any.
    fn peek(&mut self) -> anyhow::Result<Option<&Tile>> {
        if self.rows.is_empty() && !self.exhausted {
            let page = self.store.scan_tiles(self.tenant, self.after, TILE_BATCH)?;
            self.exhausted = page.len() < TILE_BATCH;
            self.after = page.last().map(Tile::id);
            self.rows.extend(page);
        }
        Ok(self.rows.front())
    }

    /// A recomputed tile, as the builder emits it.
    fn expect(&mut self, tile: Tile, problems: &mut Problems) -> anyhow::Result<()> {
        if tile.level == 0 && tile.is_full() {
            self.upper.remove(&(0, tile.index));
            self.compare_level_zero(&tile, problems)?;
        } else {
            // A wider version of a tile replaces the narrower one.
            self.upper.insert((tile.level, tile.index), tile);
        }
        Ok(())
    }

    /// Checks the stored rows of full level-0 tile `tile` (they come next in key order).
    fn compare_level_zero(&mut self, tile: &Tile, problems: &mut Problems) -> anyhow::Result<()> {
        let mut found_full = false;
        while let Some(row) = self.peek()? {
            if (row.level, row.index) > (tile.level, tile.index) {
                break;
            }
            let row = self.rows.pop_front().expect("peeked");
            if (row.level, row.index) == (tile.level, tile.index) {
                found_full |= row.is_full();
                self.compare(&row, tile, problems);
            } else {
                problems.add(
                    self.tenant,
                    &row.id().path(),
                    "a tile row no event accounts for",
                );
            }
        }
        if !found_full {
            problems.add(self.tenant, &tile.id().path(), "missing from the store");
        }
        Ok(())
    }

    fn compare(&mut self, row: &Tile, expected: &Tile, problems: &mut Problems) {
        self.checked += 1;
        let place = row.id().path();
        if row.width() > expected.width() {
            problems.add(
                self.tenant,
                &place,
                format!(
                    "{} hashes stored but the tree has {} there",
                    row.width(),
                    expected.width()
                ),
            );
            return;
        }
        if let Some(i) = (0..usize::from(row.width())).find(|&i| row.hash(i) != expected.hash(i)) {
            problems.add(
                self.tenant,
                &place,
                format!(
                    "hash {i} is {:?} but the events give {:?}",
                    row.hash(i),
                    expected.hash(i)
                ),
            );
        }
    }

    /// Checks the remaining rows against the remaining recomputed tiles (the partial
    /// level-0 tile and every higher one), both in key order. Each recomputed tile needs a
    /// row of exactly its width; a row with no recomputed tile lies beyond the tree.
    /// Returns how many tile rows were compared in all.
    fn finish(mut self, size: u64, problems: &mut Problems) -> anyhow::Result<u64> {
        let expected: Vec<Tile> = std::mem::take(&mut self.upper).into_values().collect();
        let mut present = vec![false; expected.len()];
        let mut i = 0;
        while let Some(row) = self.peek()?.cloned() {
            self.rows.pop_front();
            let key = (row.level, row.index);
            while i < expected.len() && (expected[i].level, expected[i].index) < key {
                i += 1;
            }
            match expected.get(i) {
                Some(t) if (t.level, t.index) == key => {
                    present[i] |= row.width() == t.width();
                    self.compare(&row, t, problems);
                }
                _ => problems.add(
                    self.tenant,
                    &row.id().path(),
                    format!("a tile row beyond the tree of {size} events"),
                ),
            }
        }
        for (tile, present) in expected.iter().zip(present) {
            if !present {
                problems.add(self.tenant, &tile.id().path(), "missing from the store");
            }
        }
        Ok(self.checked)
    }
}
