//! The agent's blocking pool: HTTP exchanges wait on sockets for seconds, so they run on
//! threads of their own, never on a Lua stage's thread nor on the service's (which keeps taking
//! messages meanwhile). The queue is bounded: a burst beyond it is refused at once (the request
//! is answered with an error) instead of piling up memory and answering long after anyone
//! waits.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// One unit of work: an exchange and the sending of its answer.
pub type Job = Box<dyn FnOnce() + Send>;

/// Worker threads fed through a bounded queue; dropping the pool lets them finish what they
/// hold and end.
pub struct Pool {
    tx: SyncSender<Job>,
    queue: usize,
}

impl Pool {
    /// Starts `threads` workers named `name` behind a queue of `queue` jobs (both at least 1).
    pub fn new(name: &str, threads: usize, queue: usize) -> Result<Pool, String> {
        let queue = queue.max(1);
        let (tx, rx) = mpsc::sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}:{i}"))
                .spawn(move || work(&rx))
                .map_err(|e| format!("agent thread: {e}"))?;
        }
        Ok(Pool { tx, queue })
    }

    /// Queues `job`; `Err` with the reason when the queue is full (or the workers are gone).
    pub fn submit(&self, job: Job) -> Result<(), String> {
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => format!(
                "the agent's queue is full ({} requests waiting; --agent-queue, --agent-threads)",
                self.queue
            ),
            TrySendError::Disconnected(_) => "the agent's threads have stopped".to_owned(),
        })
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let next = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        // A bug in one exchange costs that request, not the worker.
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
            log::error!("agent: an HTTP exchange panicked; the worker goes on");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn runs_jobs_and_refuses_beyond_the_queue() {
        let pool = Pool::new("t", 1, 1).unwrap();
        let (started_tx, started) = channel();
        let (release, gate) = channel::<()>();
        pool.submit(Box::new(move || {
            started_tx.send(()).unwrap();
            let _ = gate.recv();
        }))
        .unwrap();
        started.recv_timeout(Duration::from_secs(5)).unwrap();
        // The worker is busy: one job fits in the queue, the next is refused.
        let (done_tx, done) = channel();
        pool.submit(Box::new(move || done_tx.send(7).unwrap()))
            .unwrap();
        let refused = pool.submit(Box::new(|| {})).unwrap_err();
        assert!(refused.contains("queue is full"), "{refused}");
        release.send(()).unwrap();
        assert_eq!(done.recv_timeout(Duration::from_secs(5)).unwrap(), 7);
    }

    #[test]
    fn a_panicking_job_does_not_end_the_worker() {
        let pool = Pool::new("t", 1, 4).unwrap();
        pool.submit(Box::new(|| panic!("boom"))).unwrap();
        let (tx, rx) = channel();
        pool.submit(Box::new(move || tx.send(1).unwrap())).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
    }
}
