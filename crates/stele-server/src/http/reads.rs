//! Reads that can take long (listings of up to 1,000 events, traces of up to 10,000) run on
//! a few threads of their own at a lower CPU priority. They queue behind each other instead
//! of crowding the async workers off the cores, so that a liveness probe, an ingest
//! acknowledgement or a proof is answered at once however many such reads are waiting.

use super::error::ApiError;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Their nice level: below requests (0), above the search index's background work (19).
const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

pub struct ReadPool {
    jobs: Sender<Job>,
}

impl ReadPool {
    /// Starts `threads` reader threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<ReadPool> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("stele-read-{i}"))
                .spawn(move || run(&queue))?;
        }
        Ok(ReadPool { jobs })
    }

    /// Runs `f` on a reader thread and answers what it returns.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            // A panic in `f` drops `reply`: the handler answers 500, the thread lives on.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            if let Ok(result) = result {
                let _ = reply.send(result);
            }
        });
        self.jobs
            .send(job)
            .map_err(|_| ApiError::internal("the read threads have stopped"))?;
        answer
            .await
            .map_err(|_| ApiError::internal("a read failed inside the server"))?
    }
}

fn run(queue: &Mutex<Receiver<Job>>) {
    stele_index::lower_thread_priority(NICE);
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}
