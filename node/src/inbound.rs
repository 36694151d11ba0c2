//! What a stage's main loop receives.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// A message for a stage: its envelope and payload as they arrived (or were built locally).
#[derive(Debug)]
pub struct Delivery {
    /// Envelope followed by the BSON payload.
    pub body: Bytes,
    /// The sending node's instance number (where answers go), 0 if unknown.
    pub from_instance: u32,
    /// `Some(why)` when this is our own message coming back undelivered (a NACK).
    pub nack: Option<String>,
    /// It came from another node (through a router), not from this process.
    pub remote: bool,
}

impl Delivery {
    /// A delivery from this process: `buf` is a frame buffer (prefix room, then envelope and
    /// payload) that never went on the wire.
    pub fn local(buf: Vec<u8>, from_instance: u32, nack: Option<String>) -> Delivery {
        Delivery {
            body: Bytes::from(buf).slice(stage_proto::frame::PREFIX_LEN..),
            from_instance,
            nack,
            remote: false,
        }
    }
}

/// An event in a stage's inbox.
#[derive(Debug)]
pub enum Inbound {
    Message(Delivery),
    /// The router refuses messages to this stage (a member or class) because it is not keeping
    /// up; the stage's `on_overload` callback hears of it.
    Overload(String),
    /// A `thread.new` function finished; its handler id expires a moment later.
    ThreadDone(String),
    /// A job registered (`[f, bound...]`) or unregistered (empty body) a callback of its stage.
    Register {
        id: String,
        body: Bytes,
    },
    /// A job added a timer to its stage: `[f, args...]`.
    AddTask {
        id: u64,
        ms: u64,
        body: Bytes,
    },
    /// The node is stopping (the signal's name): run the stage's quit hook, handle what is
    /// already queued, and leave the main loop.
    Stop(&'static str),
}

/// The sending side of a stage's inbox; counts what waits in it (the stage's backlog, in
/// events and in message bytes).
#[derive(Debug, Clone)]
pub struct InboxTx {
    tx: Sender<Inbound>,
    counts: Arc<Counts>,
}

/// What waits in an inbox.
#[derive(Debug, Default)]
struct Counts {
    events: AtomicUsize,
    bytes: AtomicUsize,
    /// Events the stage has taken out, ever (its handled count).
    taken: AtomicU64,
}

impl Counts {
    fn add(&self, event: &Inbound) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size(event), Ordering::Relaxed);
    }

    /// The event left the inbox (taken, or its send failed).
    fn remove(&self, event: &Inbound) {
        self.events.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(size(event), Ordering::Relaxed);
    }

    /// The stage took the event out.
    fn take(&self, event: &Inbound) {
        self.remove(event);
        self.taken.fetch_add(1, Ordering::Relaxed);
    }
}

fn size(event: &Inbound) -> usize {
    match event {
        Inbound::Message(d) => d.body.len(),
        _ => 0,
    }
}

/// The stage's end of its inbox.
#[derive(Debug)]
pub struct InboxRx {
    rx: Receiver<Inbound>,
    counts: Arc<Counts>,
}

/// A new inbox.
pub fn inbox() -> (InboxTx, InboxRx) {
    let (tx, rx) = std::sync::mpsc::channel();
    let counts = Arc::new(Counts::default());
    (
        InboxTx {
            tx,
            counts: counts.clone(),
        },
        InboxRx { rx, counts },
    )
}

impl InboxTx {
    /// Queues an event; false if the stage has stopped.
    pub fn send(&self, event: Inbound) -> bool {
        self.counts.add(&event);
        match self.tx.send(event) {
            Ok(()) => true,
            Err(e) => {
                self.counts.remove(&e.0);
                false
            }
        }
    }

    /// Events waiting to be handled.
    pub fn backlog(&self) -> usize {
        self.counts.events.load(Ordering::Relaxed)
    }

    /// Message bytes waiting to be handled.
    pub fn backlog_bytes(&self) -> usize {
        self.counts.bytes.load(Ordering::Relaxed)
    }

    /// Events the stage has taken out of its inbox since it started.
    pub fn taken(&self) -> u64 {
        self.counts.taken.load(Ordering::Relaxed)
    }
}

impl InboxRx {
    pub fn recv_timeout(&self, wait: Duration) -> Result<Inbound, RecvTimeoutError> {
        let event = self.rx.recv_timeout(wait)?;
        self.counts.take(&event);
        Ok(event)
    }

    pub fn try_recv(&self) -> Result<Inbound, TryRecvError> {
        let event = self.rx.try_recv()?;
        self.counts.take(&event);
        Ok(event)
    }
}
