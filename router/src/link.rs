//! A node's link as the forwarding table sees it: where to queue frames for it, and whether it
//! is still alive.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use stage_proto::heartbeat::Liveness;
use stage_proto::writer::{Push, QueueTx};

use crate::counters::LinkCounters;

/// Least time between two overload signals to the same sender.
const OVERLOAD_SIGNAL_EVERY: Duration = Duration::from_millis(100);

/// One registered connection. Members of the forwarding table hold an `Arc<Link>`, so a link
/// that died is skipped by checking `alive` rather than by searching the table.
#[derive(Debug)]
pub struct Link {
    /// The token scripts use for this link (from 1, never reused while the router runs).
    pub token: u32,
    /// The node's name from its hello.
    pub node: String,
    pub peer: SocketAddr,
    tx: QueueTx,
    alive: AtomicBool,
    /// Heartbeat state: a silent node keeps its link but gets no traffic.
    pub liveness: Liveness,
    created: Instant,
    /// When this link (as a sender) was last told of an overload, in ms since `created`.
    overload_told_ms: AtomicU64,
    /// Classes (one bit each) whose member on this link reported itself overloaded.
    busy: [AtomicU64; 4],
    pub counters: LinkCounters,
}

impl Link {
    pub fn new(token: u32, node: String, peer: SocketAddr, tx: QueueTx) -> Link {
        Link {
            token,
            node,
            peer,
            tx,
            alive: AtomicBool::new(true),
            liveness: Liveness::default(),
            created: Instant::now(),
            overload_told_ms: AtomicU64::new(0),
            busy: Default::default(),
            counters: LinkCounters::default(),
        }
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Relaxed)
    }

    /// Whether the forwarding modes may pick it: alive and not silent (frozen).
    pub fn is_serving(&self) -> bool {
        self.is_alive() && !self.liveness.is_silent()
    }

    /// Marks the link dead; later sends fail and selection skips it.
    pub fn kill(&self) {
        self.alive.store(false, Ordering::Relaxed);
    }

    /// Queues a control frame (heartbeat, welcome, NACK); false when the link is gone. A failed
    /// send marks the link dead, so the modes stop picking it before its session has finished
    /// closing.
    pub fn send(&self, frame: Bytes) -> bool {
        if !self.is_alive() {
            return false;
        }
        self.settle(self.tx.control(&frame)) == Push::Queued
    }

    /// Queues a message, unless the node has not read the link's whole buffer yet.
    pub fn forward(&self, frame: &[u8]) -> Push {
        if !self.is_alive() {
            return Push::Closed;
        }
        self.settle(self.tx.push(frame))
    }

    /// Bytes waiting to be written to the node.
    pub fn queued(&self) -> usize {
        self.tx.queued()
    }

    /// Whether `len` more bytes of messages fit in the queue now.
    pub fn has_room(&self, len: usize) -> bool {
        self.tx.has_room(len)
    }

    /// Queues messages whose room was checked with [`Link::has_room`].
    pub fn queue_reserved(&self, frames: &[u8]) -> Push {
        self.settle(self.tx.control(frames))
    }

    /// Queues a message, waiting for room while the node reads (see
    /// [`stage_proto::writer::QueueTx::push_waiting`]).
    pub async fn forward_waiting(&self, frame: &[u8], patience: Duration) -> Push {
        if !self.is_alive() {
            return Push::Closed;
        }
        self.settle(self.tx.push_waiting(frame, patience).await)
    }

    fn settle(&self, push: Push) -> Push {
        if push == Push::Closed {
            self.kill();
        }
        push
    }

    /// Records whether the member of `class` on this link is overloaded.
    pub fn set_busy(&self, class: u8, busy: bool) {
        let (word, bit) = ((class / 64) as usize, 1u64 << (class % 64));
        if busy {
            self.busy[word].fetch_or(bit, Ordering::Relaxed);
        } else {
            self.busy[word].fetch_and(!bit, Ordering::Relaxed);
        }
    }

    /// Whether the member of `class` on this link is overloaded (round-robin skips it).
    pub fn is_busy(&self, class: u8) -> bool {
        self.busy[(class / 64) as usize].load(Ordering::Relaxed) & (1u64 << (class % 64)) != 0
    }

    /// Whether this sender is due for an overload signal (at most one per interval).
    pub fn overload_due(&self) -> bool {
        let now = self.created.elapsed().as_millis() as u64;
        let last = self.overload_told_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= OVERLOAD_SIGNAL_EVERY.as_millis() as u64;
        if due {
            self.overload_told_ms.store(now.max(1), Ordering::Relaxed);
        }
        due
    }
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "link {} (node '{}' at {})",
            self.token, self.node, self.peer
        )
    }
}
