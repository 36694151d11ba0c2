//! Ordered execution locks (stage-spec §8.3): `>NAME.cb` queues a request for lock NAME; the
//! holder at the head of the queue gets its own message back (its `cb` runs), keeps the lock
//! until it releases it (`<NAME.x`) or for 100 ms after the grant or its last extension
//! (`>>NAME.x`, ms), then the next request in arrival order is granted.
//!
//! Lock frames (kind `Lock`) carry the operation in `mode`, a hash of NAME in `key`, and in
//! `target` the milliseconds of an extension, or how long an acquire may wait (past that the
//! requester has given up and is skipped). The router keeps the queues: every node shares
//! them through it, and nothing is decoded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stage_proto::{Frame, Header, Kind, LockOp, Mode, ServiceId};

use crate::link::Link;

/// How long a grant lasts unless extended or released.
pub const HOLD: Duration = Duration::from_millis(100);

struct Waiter {
    link: Arc<Link>,
    source: ServiceId,
    request: Frame,
    /// The request's deadline: past it the requester has given up, so it is not granted.
    expires: Option<Instant>,
}

struct Holder {
    link: Arc<Link>,
    source: ServiceId,
    until: Instant,
}

#[derive(Default)]
struct Queue {
    holder: Option<Holder>,
    waiters: VecDeque<Waiter>,
}

impl Queue {
    /// Grants the lock to the next live waiter, if nobody holds it.
    fn grant_next(&mut self, key: u64) {
        while self.holder.is_none() {
            let Some(w) = self.waiters.pop_front() else {
                return;
            };
            if w.expires.is_some_and(|t| t <= Instant::now()) {
                log::debug!(
                    "lock {key:016x}: request of {} expired while queued",
                    w.source
                );
                continue;
            }
            let mut h = Header::new(Kind::Message);
            h.mode = Mode::Direct as u8;
            h.target = w.source;
            h.source = w.source;
            let grant = Frame::new(h, w.request.body());
            if w.link.send(grant.raw) {
                log::debug!("lock {key:016x}: granted to {}", w.source);
                self.holder = Some(Holder {
                    link: w.link,
                    source: w.source,
                    until: Instant::now() + HOLD,
                });
            }
        }
    }
}

/// Every lock queue of the router.
#[derive(Default)]
pub struct Locks {
    queues: Mutex<HashMap<u64, Queue>>,
}

impl Locks {
    fn queues(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Queue>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A lock frame from `link`.
    pub fn handle(&self, frame: &Frame, link: &Arc<Link>) {
        let h = frame.header;
        let mut queues = self.queues();
        let queue = queues.entry(h.key).or_default();
        match LockOp::from_u8(h.mode) {
            Some(LockOp::Acquire) => {
                let wait = Duration::from_millis(h.target.0 as u64);
                queue.waiters.push_back(Waiter {
                    link: link.clone(),
                    source: h.source,
                    request: frame.clone(),
                    expires: (h.target.0 != 0).then(|| Instant::now() + wait),
                });
            }
            Some(LockOp::Extend) => {
                if let Some(holder) = queue.holder.as_mut().filter(|x| x.source == h.source) {
                    holder.until = Instant::now() + Duration::from_millis(h.target.0 as u64) + HOLD;
                }
            }
            Some(LockOp::Release) => {
                if queue.holder.as_ref().is_some_and(|x| x.source == h.source) {
                    queue.holder = None;
                }
            }
            None => log::warn!("{link}: lock frame with unknown operation {}", h.mode),
        }
        queue.grant_next(h.key);
        if queue.holder.is_none() && queue.waiters.is_empty() {
            queues.remove(&h.key);
        }
    }

    /// Releases grants whose time is up and grants the next waiters.
    pub fn expire(&self) {
        let now = Instant::now();
        let mut queues = self.queues();
        for (key, queue) in queues.iter_mut() {
            if queue.holder.as_ref().is_some_and(|x| x.until <= now) {
                log::debug!("lock {key:016x}: released after its hold time");
                queue.holder = None;
                queue.grant_next(*key);
            }
        }
        queues.retain(|_, q| q.holder.is_some() || !q.waiters.is_empty());
    }

    /// A link closed: its requests leave the queues and its grants are released.
    pub fn forget(&self, link: &Link) {
        let mut queues = self.queues();
        for (key, queue) in queues.iter_mut() {
            queue.waiters.retain(|w| w.link.token != link.token);
            if queue
                .holder
                .as_ref()
                .is_some_and(|x| x.link.token == link.token)
            {
                queue.holder = None;
                queue.grant_next(*key);
            }
        }
        queues.retain(|_, q| q.holder.is_some() || !q.waiters.is_empty());
    }
}

/// Ticks `expire` every 10 ms (the original's resolution) for as long as the router runs.
pub async fn run(locks: Arc<Locks>) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        tick.tick().await;
        locks.expire();
    }
}
