//! Checkpoints: the writer thread signs each grown log's tree head as a C2SP checkpoint,
//! at most once per interval, and stores it; the HTTP layer serves the latest ones.
//!
//! A tick signs at most `max_logs` logs, so that events spread over many tenants cannot
//! turn the writer into a signing machine: logs someone waits on (a `?proof=true` read)
//! come first, then the others in the order they grew; the rest wait for the next tick.
//! At shutdown every grown log is signed.
//!
//! Invariant: a checkpoint is published only after it is stored, and only for a tree size
//! whose events and tiles are committed.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use stele_core::Timestamp;
use stele_store::{LogWriter, StoredCheckpoint};
use stele_tlog::merkle::NodeHash;
use stele_tlog::note::{Checkpoint, Note, SignerKey};
use tokio::sync::watch;

/// A signed checkpoint of one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub size: u64,
    pub root: NodeHash,
    pub signed_at: Timestamp,
    /// The signed note, as served.
    pub note: String,
}

impl Signed {
    /// Reads back a stored checkpoint (its signature was checked when it was made).
    pub fn from_stored(stored: &StoredCheckpoint) -> Result<Signed, String> {
        let note = Note::parse(&stored.note).map_err(|e| e.to_string())?;
        let checkpoint = Checkpoint::parse(&note.text).map_err(|e| e.to_string())?;
        Ok(Signed {
            size: checkpoint.size,
            root: checkpoint.root,
            signed_at: stored.signed_at,
            note: stored.note.clone(),
        })
    }
}

/// The latest checkpoint of every log, shared with request handlers.
pub struct Published {
    latest: RwLock<HashMap<String, Arc<Signed>>>,
    /// Bumped after every publication, so waiters can wake.
    generation: watch::Sender<u64>,
    /// Logs a reader waits on, signed before the others at the next tick.
    wanted: Mutex<HashSet<String>>,
}

impl Published {
    pub fn new(initial: HashMap<String, Signed>) -> Published {
        Published {
            latest: RwLock::new(initial.into_iter().map(|(t, s)| (t, Arc::new(s))).collect()),
            generation: watch::channel(0).0,
            wanted: Mutex::default(),
        }
    }

    /// The logs readers waited on since the last call.
    fn take_wanted(&self) -> HashSet<String> {
        std::mem::take(&mut *self.wanted.lock().expect("wanted poisoned"))
    }

    pub fn latest(&self, tenant: &str) -> Option<Arc<Signed>> {
        self.latest
            .read()
            .expect("checkpoints poisoned")
            .get(tenant)
            .cloned()
    }

    /// The latest checkpoint of `tenant` once it covers `min_size` leaves, waiting up to
    /// `timeout` for the writer to sign one.
    pub async fn wait_for(
        &self,
        tenant: &str,
        min_size: u64,
        timeout: Duration,
    ) -> Option<Arc<Signed>> {
        let mut changes = self.generation.subscribe();
        let covers = |s: &Option<Arc<Signed>>| s.as_ref().is_some_and(|s| s.size >= min_size);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let now = self.latest(tenant);
            if covers(&now) {
                return now;
            }
            self.wanted
                .lock()
                .expect("wanted poisoned")
                .insert(tenant.to_string());
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
    }

    /// Publishes checkpoints; one of a smaller tree than the one published is ignored (with
    /// several nodes, another node may have signed a larger tree in the meantime).
    pub fn publish(&self, signed: Vec<(String, Signed)>) {
        let mut latest = self.latest.write().expect("checkpoints poisoned");
        for (tenant, s) in signed {
            if latest.get(&tenant).is_none_or(|old| old.size <= s.size) {
                latest.insert(tenant, Arc::new(s));
            }
        }
        drop(latest);
        self.generation.send_modify(|g| *g += 1);
    }
}

/// Runs on the writer thread: remembers which logs grew and signs them when due.
pub struct Checkpointer {
    key: SignerKey,
    origin: String,
    interval: Duration,
    /// Logs signed at most per tick.
    max_logs: usize,
    /// Logs grown since their last checkpoint.
    dirty: HashSet<String>,
    /// The same logs in the order they grew (with entries of logs signed since, skipped).
    grown: VecDeque<String>,
    last: Option<Instant>,
    published: Arc<Published>,
}

impl Checkpointer {
    /// `dirty` are the logs that already grew past their latest checkpoint (a crash before
    /// it was signed): they are signed as soon as the writer starts.
    pub fn new(
        key: SignerKey,
        origin: String,
        interval: Duration,
        max_logs: usize,
        published: Arc<Published>,
        dirty: BTreeSet<String>,
    ) -> Checkpointer {
        let mut checkpointer = Checkpointer {
            key,
            origin,
            interval,
            max_logs,
            dirty: HashSet::new(),
            grown: VecDeque::new(),
            last: None,
            published,
        };
        dirty.iter().for_each(|tenant| checkpointer.grew(tenant));
        checkpointer
    }

    pub fn grew(&mut self, tenant: &str) {
        if !self.dirty.contains(tenant) {
            self.dirty.insert(tenant.to_string());
            self.grown.push_back(tenant.to_string());
        }
    }

    /// The logs to sign now, removed from the grown ones: all of them at shutdown,
    /// otherwise up to `max_logs`, waited-on logs first, then in the order they grew.
    fn due_logs(&mut self, all: bool) -> Vec<String> {
        let limit = if all { usize::MAX } else { self.max_logs };
        let mut due: Vec<String> = self
            .published
            .take_wanted()
            .into_iter()
            .filter(|tenant| self.dirty.contains(tenant))
            .take(limit)
            .collect();
        due.iter().for_each(|tenant| {
            self.dirty.remove(tenant);
        });
        while due.len() < limit
            && let Some(tenant) = self.grown.pop_front()
        {
            if self.dirty.remove(&tenant) {
                due.push(tenant);
            }
        }
        if self.dirty.is_empty() {
            self.grown.clear();
        }
        // In tenant order: storing a checkpoint touches its log's row, and every writer
        // (the appends of other nodes too) takes log rows in that order, or deadlocks.
        due.sort_unstable();
        due
    }

    /// When the next checkpoint is due; `None` while no log grew.
    pub fn deadline(&self) -> Option<Instant> {
        if self.dirty.is_empty() {
            return None;
        }
        Some(
            self.last
                .map_or_else(Instant::now, |last| last + self.interval),
        )
    }

    pub fn is_due(&self) -> bool {
        self.deadline().is_some_and(|at| at <= Instant::now())
    }

    /// Signs and stores a checkpoint for the due logs (every grown one when `all`), in one
    /// transaction, then publishes them. On failure the logs stay grown and are retried an
    /// interval later.
    pub fn sign(&mut self, writer: &mut dyn LogWriter, all: bool) {
        if self.dirty.is_empty() {
            return;
        }
        self.last = Some(Instant::now());
        let signed_at = Timestamp::from_datetime(time::OffsetDateTime::now_utc())
            .expect("the clock is in range");
        let due = self.due_logs(all);
        let mut stored = Vec::with_capacity(due.len());
        let mut signed = Vec::with_capacity(due.len());
        for tenant in &due {
            let Some(head) = writer.tree_head(tenant) else {
                continue;
            };
            let body = Checkpoint {
                origin: format!("{}/{tenant}", self.origin),
                size: head.size,
                root: head.root,
                extensions: Vec::new(),
            };
            let note = match self.key.sign(&body.to_text()) {
                Ok(note) => note,
                Err(e) => {
                    tracing::error!(tenant, error = %e, "cannot sign a checkpoint");
                    due.iter().for_each(|tenant| self.grew(tenant));
                    return;
                }
            };
            stored.push(StoredCheckpoint {
                tenant: tenant.clone(),
                size: head.size,
                signed_at,
                note: note.clone(),
            });
            signed.push((
                tenant.clone(),
                Signed {
                    size: head.size,
                    root: head.root,
                    signed_at,
                    note,
                },
            ));
        }
        match writer.add_checkpoints(&stored) {
            Ok(()) => {
                metrics::counter!("stele_checkpoints_signed_total").increment(signed.len() as u64);
                tracing::debug!(logs = signed.len(), "checkpoints signed");
                self.published.publish(signed);
            }
            Err(e) => {
                metrics::counter!("stele_checkpoint_failures_total").increment(1);
                tracing::error!(error = %e, "storing checkpoints failed; retrying later");
                due.iter().for_each(|tenant| self.grew(tenant));
            }
        }
    }
}
