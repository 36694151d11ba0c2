//! Requests waiting for an answer, and their deadlines (DESIGN §8: nothing waits forever).
//!
//! A message that expects an answer (`=ret`, `!fail`) gets a correlation id and a deadline.
//! Its answer carries the id back; an answer after the deadline is void (dropped), like any
//! message past its deadline. When the deadline passes with no answer — or a NACK arrives —
//! the sender's fail path runs once: `fail(err, values...)` or `ret(nil, err)`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::api::waitfor::now_ms;
use crate::inbound::Delivery;
use crate::node::Node;

struct Entry {
    stage: String,
    /// The request's envelope and payload, for the failure notice; dropped once answered.
    request: Option<Bytes>,
    deadline_ms: u64,
}

#[derive(Default)]
struct Inner {
    next: u64,
    entries: HashMap<u64, Entry>,
    deadlines: BinaryHeap<Reverse<(u64, u64)>>,
    stopping: bool,
}

/// The requests of one node.
#[derive(Default)]
pub struct Pending {
    inner: Mutex<Inner>,
    wake: Condvar,
}

impl Pending {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh correlation id (never 0).
    pub fn reserve(&self) -> u64 {
        let mut i = self.inner();
        i.next += 1;
        i.next
    }

    /// Starts waiting for the answer to request `corr` of `stage`.
    pub fn open(&self, corr: u64, stage: &str, request: Bytes, deadline_ms: u64) {
        let mut i = self.inner();
        let earliest = i
            .deadlines
            .peek()
            .is_none_or(|Reverse((d, _))| deadline_ms < *d);
        i.entries.insert(
            corr,
            Entry {
                stage: stage.to_owned(),
                request: Some(request),
                deadline_ms,
            },
        );
        i.deadlines.push(Reverse((deadline_ms, corr)));
        drop(i);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// An answer to `corr` arrived: true if in time (deliver it), false if void (drop it).
    /// The entry stays until the deadline, so several answers (a broadcast request, a
    /// progress report) are all delivered, and the deadline then passes quietly.
    pub fn answered(&self, corr: u64) -> bool {
        match self.inner().entries.get_mut(&corr) {
            // In time: the request is settled (its copy is no longer needed).
            Some(e) if e.deadline_ms >= now_ms() => {
                e.request = None;
                true
            }
            // Late, or already settled and expired: the deadline thread runs the fail path of
            // a request still waiting; the answer is void either way.
            _ => false,
        }
    }

    /// A NACK for `corr` arrived (or the send failed): true if the request still waited —
    /// run its fail path now — false if it was answered or had already failed.
    pub fn failed(&self, corr: u64) -> bool {
        let mut i = self.inner();
        match i.entries.get(&corr) {
            Some(e) if e.request.is_some() => {
                i.entries.remove(&corr);
                true
            }
            _ => false,
        }
    }

    /// Removes the requests whose deadline passed; those never answered come back as
    /// `(stage, request)`. Returns when the next deadline is due.
    fn expire(&self) -> (Vec<(String, Bytes, u64)>, Option<u64>) {
        let now = now_ms();
        let mut i = self.inner();
        let mut due = Vec::new();
        while let Some(Reverse((deadline, corr))) = i.deadlines.peek().copied() {
            if deadline > now {
                return (due, Some(deadline));
            }
            i.deadlines.pop();
            if let Some(e) = i.entries.remove(&corr) {
                if let Some(request) = e.request {
                    due.push((e.stage, request, e.deadline_ms));
                }
            }
        }
        (due, None)
    }

    /// Stops the deadline thread.
    pub fn stop(&self) {
        self.inner().stopping = true;
        self.wake.notify_all();
    }
}

/// Runs the failure notices of expired requests until the node stops.
pub fn spawn_deadlines(node: Arc<Node>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("deadlines".into())
        .spawn(move || {
            let pending = node.pending();
            loop {
                let (due, next) = pending.expire();
                for (stage, request, deadline) in due {
                    let late = now_ms().saturating_sub(deadline);
                    let d = Delivery {
                        body: request,
                        from_instance: node.instance(),
                        nack: Some(format!("no answer before the deadline (+{late} ms)")),
                        remote: false,
                    };
                    node.deliver_local(&stage, d);
                }
                // Look again under the lock we wait on: a request opened while the notices
                // above went out must not wait behind an older, later deadline.
                let i = pending.inner();
                if i.stopping {
                    return;
                }
                let next = i.deadlines.peek().map(|Reverse((d, _))| *d).or(next);
                let wait = next.map_or(Duration::from_secs(60), |d| {
                    Duration::from_millis(d.saturating_sub(now_ms()))
                });
                drop(
                    pending
                        .wake
                        .wait_timeout(i, wait)
                        .unwrap_or_else(|p| p.into_inner()),
                );
            }
        })
}
