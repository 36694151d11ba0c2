//! A node's link as the forwarding table sees it: where to queue frames for it, and whether it
//! is still alive.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use stage_proto::heartbeat::Liveness;
use tokio::sync::mpsc::UnboundedSender;

/// One registered connection. Members of the forwarding table hold an `Arc<Link>`, so a link
/// that died is skipped by checking `alive` rather than by searching the table.
#[derive(Debug)]
pub struct Link {
    /// The token scripts use for this link (from 1, never reused while the router runs).
    pub token: u32,
    /// The node's name from its hello.
    pub node: String,
    pub peer: SocketAddr,
    tx: UnboundedSender<Bytes>,
    alive: AtomicBool,
    /// Heartbeat state: a silent node keeps its link but gets no traffic.
    pub liveness: Liveness,
}

impl Link {
    pub fn new(token: u32, node: String, peer: SocketAddr, tx: UnboundedSender<Bytes>) -> Link {
        Link {
            token,
            node,
            peer,
            tx,
            alive: AtomicBool::new(true),
            liveness: Liveness::default(),
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

    /// Queues a frame; false when the link is gone. A failed send marks the link dead, so the
    /// modes stop picking it before its session has finished closing.
    pub fn send(&self, frame: Bytes) -> bool {
        if !self.is_alive() {
            return false;
        }
        let sent = self.tx.send(frame).is_ok();
        if !sent {
            self.kill();
        }
        sent
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
