//! The sequencer: the single writer of the log store. Requests queue their events; one
//! thread takes everything waiting, appends it in one transaction (group commit), and only
//! after the commit answers each request.
//!
//! The same thread signs checkpoints (see [`crate::checkpoints`]), so every store write
//! goes through one connection and a checkpoint never names an uncommitted tree.
//!
//! Invariant: an event is acknowledged only after the transaction holding it committed.

use crate::workers::checkpointer::Checkpointer;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Instant;
use stele_core::Timestamp;
use stele_store::{Appended, Conflict, LogWriter, NewEvent};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the ingest queue is full ({queued} events waiting)")]
    Overloaded { queued: usize },
    #[error("the writer is stopped or the store failed")]
    Unavailable,
    /// An event reuses a client-chosen id with other content; nothing was stored.
    #[error("{0}")]
    Conflict(Conflict),
}

enum Job {
    Append {
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<Vec<Appended>, SubmitError>>,
        _permit: OwnedSemaphorePermit,
    },
    Stop,
}

/// Handle to the writer thread; cheap to share.
pub struct Sequencer {
    jobs: mpsc::Sender<Job>,
    permits: Arc<Semaphore>,
    capacity: usize,
    /// Room for Stele's own events (the meta-audit) apart from clients' ingest, so that a
    /// full ingest queue does not refuse reads whose record must be written.
    own: Arc<Semaphore>,
    healthy: Arc<AtomicBool>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// Stele's own events that may wait for the writer at once.
const OWN_EVENTS: usize = 4_096;

impl Sequencer {
    /// Starts the writer thread. `after_commit` runs after every successful commit.
    pub fn start(
        mut writer: Box<dyn LogWriter>,
        queue_events: usize,
        max_batch_events: usize,
        after_commit: Box<dyn Fn() + Send>,
        mut checkpointer: Checkpointer,
    ) -> std::io::Result<Sequencer> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let healthy = Arc::new(AtomicBool::new(true));
        let thread_healthy = healthy.clone();
        let permits = Arc::new(Semaphore::new(queue_events));
        let thread_permits = permits.clone();
        let thread = std::thread::Builder::new()
            .name("stele-writer".into())
            .spawn(move || {
                let mut stop = false;
                while !stop {
                    let received = match checkpointer.deadline() {
                        None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                        Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
                    };
                    let first = match received {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout) => {
                            checkpointer.sign(writer.as_mut(), false);
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    };
                    let mut batch = Vec::new();
                    let mut count = 0;
                    let mut next = Some(first);
                    while let Some(job) = next.take() {
                        match job {
                            Job::Stop => stop = true,
                            Job::Append {
                                events,
                                reply,
                                _permit,
                            } => {
                                count += events.len();
                                batch.push((events, reply, _permit));
                            }
                        }
                        if stop || count >= max_batch_events {
                            break;
                        }
                        next = rx.try_recv().ok();
                    }
                    if !batch.is_empty() {
                        let grown = commit(writer.as_mut(), batch, count, &thread_healthy);
                        grown.iter().for_each(|tenant| checkpointer.grew(tenant));
                        after_commit();
                    }
                    if checkpointer.is_due() {
                        checkpointer.sign(writer.as_mut(), false);
                    }
                    let queued = queue_events - thread_permits.available_permits();
                    metrics::gauge!("stele_ingest_queue_events").set(queued as f64);
                }
                // The final checkpoints cover everything committed, in every grown log.
                checkpointer.sign(writer.as_mut(), true);
                tracing::info!("writer stopped");
            })?;
        Ok(Sequencer {
            jobs,
            permits,
            capacity: queue_events,
            own: Arc::new(Semaphore::new(OWN_EVENTS)),
            healthy,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// Queues `events` and waits until they are durably stored.
    pub async fn submit(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, SubmitError> {
        self.submit_within(&self.permits, events).await
    }

    /// As [`Sequencer::submit`], for events Stele writes itself: they wait in a queue of
    /// their own (`OWN_EVENTS`), not behind clients' ingest.
    pub async fn submit_own(&self, events: Vec<NewEvent>) -> Result<Vec<Appended>, SubmitError> {
        self.submit_within(&self.own, events).await
    }

    async fn submit_within(
        &self,
        permits: &Arc<Semaphore>,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Appended>, SubmitError> {
        let overloaded = || SubmitError::Overloaded {
            queued: self.queued(),
        };
        let n = u32::try_from(events.len()).map_err(|_| overloaded())?;
        let permit = permits
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|e| match e {
                tokio::sync::TryAcquireError::Closed => SubmitError::Unavailable,
                tokio::sync::TryAcquireError::NoPermits => overloaded(),
            })?;
        metrics::gauge!("stele_ingest_queue_events").set(self.queued() as f64);
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::Append {
                events,
                reply,
                _permit: permit,
            })
            .map_err(|_| SubmitError::Unavailable)?;
        answer.await.map_err(|_| SubmitError::Unavailable)?
    }

    /// Events queued or being committed.
    pub fn queued(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }

    /// The writer thread runs and its last commit succeeded.
    pub fn is_healthy(&self) -> bool {
        let running = self
            .thread
            .lock()
            .expect("writer handle poisoned")
            .as_ref()
            .is_some_and(|t| !t.is_finished());
        running && self.healthy.load(Ordering::SeqCst)
    }

    /// Commits everything queued so far, then stops the writer. Later submissions fail.
    pub fn shutdown(&self) {
        self.permits.close();
        self.own.close();
        let _ = self.jobs.send(Job::Stop);
        let thread = self.thread.lock().expect("writer handle poisoned").take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!("writer thread panicked");
        }
    }
}

type Waiting = (
    Vec<NewEvent>,
    oneshot::Sender<Result<Vec<Appended>, SubmitError>>,
    OwnedSemaphorePermit,
);

/// Appends the batch and answers its requests. Returns the logs that grew.
fn commit(
    writer: &mut dyn LogWriter,
    batch: Vec<Waiting>,
    count: usize,
    healthy: &AtomicBool,
) -> BTreeSet<String> {
    let started = Instant::now();
    let mut all = Vec::with_capacity(count);
    let mut waiting = Vec::with_capacity(batch.len());
    let mut sizes = Vec::with_capacity(batch.len());
    for (events, reply, permit) in batch {
        sizes.push(events.len());
        waiting.push((reply, permit));
        all.extend(events);
    }
    let now =
        Timestamp::from_datetime(time::OffsetDateTime::now_utc()).expect("the clock is in range");
    match writer.append_requests(&all, &sizes, now) {
        Ok(outcomes) => {
            healthy.store(true, Ordering::SeqCst);
            let elapsed = started.elapsed().as_secs_f64();
            metrics::histogram!("stele_commit_seconds").record(elapsed);
            metrics::histogram!("stele_commit_batch_events").record(count as f64);
            let mut grown = BTreeSet::new();
            let (mut stored, mut duplicates, mut refused) = (0, 0, 0);
            let mut events = all.iter();
            for ((outcome, (reply, _permit)), n) in outcomes.into_iter().zip(waiting).zip(sizes) {
                let mine = events.by_ref().take(n);
                match &outcome {
                    Ok(appended) => {
                        for (event, a) in mine.zip(appended) {
                            if a.duplicate {
                                duplicates += 1;
                            } else {
                                stored += 1;
                                if !grown.contains(&event.tenant) {
                                    grown.insert(event.tenant.clone());
                                }
                            }
                        }
                    }
                    Err(_) => refused += 1,
                }
                let _ = reply.send(outcome.map_err(SubmitError::Conflict));
            }
            metrics::counter!("stele_events_ingested_total").increment(stored);
            metrics::counter!("stele_events_duplicate_total").increment(duplicates);
            metrics::counter!("stele_requests_conflict_total").increment(refused);
            tracing::debug!(events = count, stored, seconds = elapsed, "batch committed");
            grown
        }
        Err(e) => {
            healthy.store(false, Ordering::SeqCst);
            metrics::counter!("stele_commit_failures_total").increment(1);
            tracing::error!(error = %e, events = count, "batch commit failed; nothing acknowledged");
            for (reply, _permit) in waiting {
                let _ = reply.send(Err(SubmitError::Unavailable));
            }
            BTreeSet::new()
        }
    }
}
