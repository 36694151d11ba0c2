//! The worker pool's queue: jobs ready to run, per-key serialisation, and delayed re-runs.
//!
//! `stage.submit(key, f, ...)` (stage-spec §6.4): key 0 may run concurrently with anything;
//! jobs with the same non-zero key run strictly one at a time, in submission order, while
//! different keys run side by side. A key is *busy* from the moment one of its jobs is handed
//! to a worker until that job finishes; jobs submitted meanwhile wait in the key's queue.
//!
//! Broker sockets queue here too ([`Task::Socket`]): a socket with events waiting is in the
//! ready queue at most once and goes to its back after a few events, so connections take
//! turns and a flooding client cannot monopolise the workers (seed 002).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// One job: what to run, on whose behalf.
#[derive(Debug, Clone)]
pub struct Job {
    /// Serialisation key; 0 = none.
    pub key: i64,
    /// The stage the job runs for (`_STAGE`; where `thread.signal` and results go).
    pub stage: String,
    /// BSON payload: the function (or `"file+member"`) then its arguments.
    pub body: Bytes,
    /// For `thread.new`: the callback id on `stage` that receives its signals and results.
    pub thread: Option<String>,
}

/// What a worker runs next.
pub enum Task {
    Job(Job),
    /// A broker socket has events waiting (stage-spec §10.1).
    Socket(Arc<crate::broker::socket::Socket>),
}

struct Delayed {
    due: Instant,
    seq: u64,
    job: Job,
}

impl PartialEq for Delayed {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Delayed {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

#[derive(Default)]
struct State {
    ready: VecDeque<Task>,
    /// Busy keys and the jobs waiting behind the running one.
    keys: HashMap<i64, VecDeque<Job>>,
    delayed: BinaryHeap<Reverse<Delayed>>,
    seq: u64,
    stopping: bool,
}

impl State {
    fn admit(&mut self, job: Job) {
        if job.key == 0 {
            self.ready.push_back(Task::Job(job));
            return;
        }
        match self.keys.get_mut(&job.key) {
            Some(waiting) => waiting.push_back(job),
            None => {
                self.keys.insert(job.key, VecDeque::new());
                self.ready.push_back(Task::Job(job));
            }
        }
    }

    /// Moves delayed jobs that are due into the queues; returns when the next one is due.
    fn promote(&mut self, now: Instant) -> Option<Instant> {
        while let Some(Reverse(d)) = self.delayed.peek() {
            if d.due > now {
                return Some(d.due);
            }
            let Some(Reverse(d)) = self.delayed.pop() else {
                break;
            };
            self.admit(d.job);
        }
        None
    }
}

/// The queue shared by the submitting threads and the workers.
#[derive(Clone, Default)]
pub struct Pool {
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl Pool {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a job; never blocks on a busy worker.
    pub fn submit(&self, job: Job) {
        self.state().admit(job);
        self.shared.1.notify_one();
    }

    /// Queues a socket's turn (the socket makes sure it is queued once at a time).
    pub fn schedule(&self, socket: Arc<crate::broker::socket::Socket>) {
        self.state().ready.push_back(Task::Socket(socket));
        self.shared.1.notify_one();
    }

    /// Queues a job to run after `delay` (a job's "run again in n ms").
    pub fn submit_after(&self, job: Job, delay: Duration) {
        let mut s = self.state();
        s.seq += 1;
        let seq = s.seq;
        s.delayed.push(Reverse(Delayed {
            due: Instant::now() + delay,
            seq,
            job,
        }));
        drop(s);
        // Some worker must recompute how long to sleep.
        self.shared.1.notify_one();
    }

    /// The next task for a worker; `None` once the pool stops.
    pub fn next(&self) -> Option<Task> {
        let mut s = self.state();
        loop {
            if s.stopping {
                return None;
            }
            let next_due = s.promote(Instant::now());
            if let Some(job) = s.ready.pop_front() {
                return Some(job);
            }
            s = match next_due {
                Some(due) => {
                    let wait = due.saturating_duration_since(Instant::now());
                    self.shared
                        .1
                        .wait_timeout(s, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.shared.1.wait(s).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }

    /// A worker finished a job with `key`: the key's next job, if any, becomes ready.
    pub fn done(&self, key: i64) {
        if key == 0 {
            return;
        }
        let mut s = self.state();
        let next = s.keys.get_mut(&key).and_then(VecDeque::pop_front);
        match next {
            Some(job) => {
                s.ready.push_back(Task::Job(job));
                drop(s);
                self.shared.1.notify_one();
            }
            None => {
                s.keys.remove(&key);
            }
        }
    }

    /// Wakes every worker to exit.
    pub fn stop(&self) {
        self.state().stopping = true;
        self.shared.1.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(key: i64, n: u8) -> Job {
        Job {
            key,
            stage: "s".into(),
            body: Bytes::from(vec![n]),
            thread: None,
        }
    }

    fn next_job(pool: &Pool) -> Job {
        match pool.next() {
            Some(Task::Job(j)) => j,
            _ => panic!("expected a job"),
        }
    }

    #[test]
    fn a_key_runs_one_job_at_a_time_in_order() {
        let pool = Pool::default();
        pool.submit(job(7, 1));
        pool.submit(job(7, 2));
        pool.submit(job(0, 3));
        pool.submit(job(8, 4));
        let a = next_job(&pool);
        assert_eq!(a.body[0], 1);
        // Key 7 is busy: the free job and key 8 come first.
        assert_eq!(next_job(&pool).body[0], 3);
        assert_eq!(next_job(&pool).body[0], 4);
        pool.done(8);
        pool.done(7);
        assert_eq!(next_job(&pool).body[0], 2);
        pool.done(7);
        pool.stop();
        assert!(pool.next().is_none());
    }

    #[test]
    fn delayed_jobs_wait_their_turn() {
        let pool = Pool::default();
        let t = Instant::now();
        pool.submit_after(job(0, 9), Duration::from_millis(30));
        assert_eq!(next_job(&pool).body[0], 9);
        assert!(t.elapsed() >= Duration::from_millis(30));
    }
}
