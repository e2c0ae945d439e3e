//! The indexer: one thread that tails the log store in `seq` order per log, adds each event
//! to the index, and commits with the per-log progress as the commit's payload.

use crate::schema::{self, Fields};
use crate::{CommitPayload, Progress, Result, SCHEMA_VERSION, SearchIndex};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use stele_store::LogStore;
use tantivy::indexer::UserOperation;
use tantivy::{IndexWriter, TantivyDocument};

#[derive(Debug, Clone)]
pub struct IndexerOptions {
    /// Events read from the store per step.
    pub read_batch: usize,
    /// Commit at least this often while events arrive.
    pub max_commit_interval: Duration,
    /// Commit once no new event has arrived for this long (each commit writes a segment).
    pub quiet_interval: Duration,
    /// How often to look for new events when nobody says there are some.
    pub poll_interval: Duration,
    /// Memory for the index writer's in-memory segment.
    pub writer_memory: usize,
    /// While catching up, commit (write a segment) after this many events.
    pub catch_up_commit_events: usize,
}

impl Default for IndexerOptions {
    fn default() -> Self {
        IndexerOptions {
            read_batch: 5_000,
            max_commit_interval: Duration::from_secs(1),
            quiet_interval: Duration::from_millis(100),
            poll_interval: Duration::from_millis(500),
            writer_memory: 64 << 20,
            catch_up_commit_events: 200_000,
        }
    }
}

struct Worker {
    index: Arc<SearchIndex>,
    fields: Fields,
    writer: IndexWriter<TantivyDocument>,
    store: Arc<dyn LogStore>,
    progress: Progress,
    /// The `pos` of the next document added.
    next_pos: u64,
    pending: usize,
    last_commit: Instant,
}

impl Worker {
    fn new(
        index: Arc<SearchIndex>,
        store: Arc<dyn LogStore>,
        opts: &IndexerOptions,
    ) -> Result<Worker> {
        // One indexing thread: a segment then holds its documents in the order they were
        // added, which listings rely on to seek (see `order`); merges keep that order.
        let writer = index.index.writer_with_num_threads(1, opts.writer_memory)?;
        writer.set_merge_policy(crate::order::merge_policy(&index.index));
        let snapshot = index.snapshot();
        Ok(Worker {
            fields: index.fields,
            progress: snapshot.progress.clone(),
            next_pos: snapshot.next_pos,
            index,
            writer,
            store,
            pending: 0,
            last_commit: Instant::now(),
        })
    }

    /// Indexes up to `limit` new events; answers how many.
    fn step(&mut self, limit: usize) -> Result<usize> {
        let mut done = 0;
        for head in self.store.heads()? {
            let next = self.progress.get(&head.tenant).copied().unwrap_or(0);
            if head.size <= next {
                continue;
            }
            let events = self.store.read_range(&head.tenant, next, limit - done)?;
            // Handed to the index writer as one batch: one hand-off per read, not per event.
            let mut docs = Vec::with_capacity(events.len());
            let mut expected = next;
            for stored in &events {
                if stored.seq != expected {
                    return Err(crate::IndexError::BadEvent {
                        tenant: head.tenant.clone(),
                        seq: expected,
                        reason: format!("the store skipped from {expected} to {}", stored.seq),
                    });
                }
                let doc = schema::stored_document(
                    &self.fields,
                    &head.tenant,
                    stored.seq,
                    &stored.bytes,
                )
                .unwrap_or_else(|(doc, e)| {
                    tracing::error!(tenant = %head.tenant, seq = stored.seq, error = %e, "unreadable stored event");
                    doc
                });
                let mut doc = doc;
                doc.add_u64(self.fields.pos, self.next_pos);
                self.next_pos += 1;
                docs.push(UserOperation::Add(doc));
                expected += 1;
            }
            self.writer.run(docs)?;
            done += events.len();
            self.pending += events.len();
            self.progress.insert(head.tenant.clone(), expected);
            if done >= limit {
                break;
            }
        }
        Ok(done)
    }

    fn commit(&mut self) -> Result<bool> {
        if self.pending == 0 {
            return Ok(false);
        }
        let payload = CommitPayload {
            schema: SCHEMA_VERSION,
            logs: self.progress.clone(),
            next_pos: self.next_pos,
        };
        let mut prepared = self.writer.prepare_commit()?;
        prepared.set_payload(&serde_json::to_string(&payload).expect("payload serializes"));
        prepared.commit()?;
        self.index.publish(self.progress.clone(), self.next_pos)?;
        tracing::debug!(events = self.pending, "search index committed");
        self.pending = 0;
        self.last_commit = Instant::now();
        Ok(true)
    }
}

/// Indexes everything the store holds now, commits, and returns the number of events added.
/// Used by `stele reindex` and at start-up.
pub fn catch_up(
    index: Arc<SearchIndex>,
    store: Arc<dyn LogStore>,
    opts: &IndexerOptions,
) -> Result<u64> {
    let mut worker = Worker::new(index, store, opts)?;
    let mut total = 0u64;
    loop {
        let n = worker.step(opts.read_batch)?;
        total += n as u64;
        if n == 0 {
            break;
        }
        if worker.pending >= opts.catch_up_commit_events {
            worker.commit()?;
        }
    }
    worker.commit()?;
    let Worker {
        index,
        writer,
        progress,
        next_pos,
        ..
    } = worker;
    writer.wait_merging_threads()?;
    // The merges are committed: search the merged segments from now on.
    index.publish(progress, next_pos)?;
    Ok(total)
}

/// Lowers the calling thread's CPU priority to the lowest nice level (19) where the
/// platform allows it: the index is background work, and requests wait on the same cores.
fn lower_priority() {
    lower_thread_priority(19);
}

/// Sets the calling thread's nice level (0 to 19; higher is lower priority) where the
/// platform allows it. Linux keeps a nice value per thread; elsewhere this does nothing.
pub fn lower_thread_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its integer arguments; `who = 0` is the calling
        // thread.
        let failed = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0;
        if failed {
            tracing::debug!(nice, "could not lower a thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

struct Signal {
    woken: Mutex<bool>,
    cv: Condvar,
    stop: AtomicBool,
}

impl Signal {
    fn wait(&self, timeout: Duration) {
        let guard = self.woken.lock().expect("signal poisoned");
        let (mut woken, _) = self
            .cv
            .wait_timeout_while(guard, timeout, |woken| !*woken)
            .expect("signal poisoned");
        *woken = false;
    }

    /// Sleeps for `timeout`, waking early only to stop.
    fn sleep(&self, timeout: Duration) {
        let guard = self.woken.lock().expect("signal poisoned");
        let _ = self
            .cv
            .wait_timeout_while(guard, timeout, |_| !self.stop.load(Ordering::SeqCst))
            .expect("signal poisoned");
    }

    fn wake(&self) {
        *self.woken.lock().expect("signal poisoned") = true;
        self.cv.notify_one();
    }
}

/// The indexer thread's loop: index what is new, commit when due, sleep until woken.
fn run(
    worker: &mut Worker,
    signal: &Signal,
    opts: &IndexerOptions,
    on_commit: &(dyn Fn(&Progress) + Send),
) {
    loop {
        let stopping = signal.stop.load(Ordering::SeqCst);
        let mut found = 0;
        let caught_up = loop {
            match worker.step(opts.read_batch) {
                // When stopping, index everything there is before the last commit.
                Ok(n) if stopping && n == opts.read_batch => found += n,
                Ok(n) => {
                    found += n;
                    break n < opts.read_batch;
                }
                Err(e) => {
                    tracing::error!(error = %e, "indexer step failed; retrying");
                    break true;
                }
            }
        };
        // Each commit writes a segment: while events keep coming, commit once per
        // `max_commit_interval`; as soon as they stop, commit what is pending.
        let quiet = caught_up && found == 0;
        let due = stopping || quiet || worker.last_commit.elapsed() >= opts.max_commit_interval;
        if due {
            match worker.commit() {
                Ok(true) => on_commit(&worker.progress),
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "search index commit failed"),
            }
        }
        if stopping {
            break;
        }
        if caught_up && worker.pending > 0 {
            // Nothing indexed is visible before the next commit: gather events
            // for a while instead of waking at every write, then look again
            // (finding none means the store went quiet: commit).
            signal.sleep(opts.quiet_interval.max(Duration::from_millis(1)));
        } else if caught_up {
            signal.wait(opts.poll_interval.max(Duration::from_millis(1)));
        }
    }
}

/// Wakes the indexer: new events were committed.
#[derive(Clone)]
pub struct Notifier(Arc<Signal>);

impl Notifier {
    pub fn notify(&self) {
        self.0.wake();
    }
}

/// The running indexer thread.
pub struct Indexer {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl Indexer {
    /// Starts indexing in the background. `on_commit` is called with the new progress after
    /// every commit that made events searchable.
    pub fn spawn(
        index: Arc<SearchIndex>,
        store: Arc<dyn LogStore>,
        opts: IndexerOptions,
        on_commit: Box<dyn Fn(&Progress) + Send>,
    ) -> Result<Indexer> {
        let signal = Arc::new(Signal {
            woken: Mutex::new(false),
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let thread_signal = signal.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("stele-indexer".into())
            .spawn(move || {
                // Storing and acknowledging events comes first; search catches up. The index
                // writer's own threads, started next, inherit the lower priority.
                lower_priority();
                let mut worker = match Worker::new(index, store, &opts) {
                    Ok(worker) => {
                        let _ = ready_tx.send(Ok(()));
                        worker
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                run(&mut worker, &thread_signal, &opts, on_commit.as_ref());
                if let Err(e) = worker.writer.wait_merging_threads() {
                    tracing::warn!(error = %e, "search index merge did not finish");
                }
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Indexer {
                signal,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(crate::IndexError::Io(std::io::Error::other(
                "the indexer thread ended before starting",
            ))),
        }
    }

    /// Tells the indexer that new events were committed.
    pub fn notify(&self) {
        self.signal.wake();
    }

    /// A handle that can tell the indexer about new events from another thread.
    pub fn notifier(&self) -> Notifier {
        Notifier(self.signal.clone())
    }

    /// Indexes what is left, commits, and stops.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.signal.stop.store(true, Ordering::SeqCst);
            self.signal.wake();
            if thread.join().is_err() {
                tracing::error!("indexer thread panicked");
            }
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        self.stop();
    }
}
