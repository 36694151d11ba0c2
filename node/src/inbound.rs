//! What a stage's main loop receives.

use std::sync::atomic::{AtomicUsize, Ordering};
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

/// The sending side of a stage's inbox; counts what waits in it (the stage's backlog).
#[derive(Debug, Clone)]
pub struct InboxTx {
    tx: Sender<Inbound>,
    backlog: Arc<AtomicUsize>,
}

/// The stage's end of its inbox.
#[derive(Debug)]
pub struct InboxRx {
    rx: Receiver<Inbound>,
    backlog: Arc<AtomicUsize>,
}

/// A new inbox.
pub fn inbox() -> (InboxTx, InboxRx) {
    let (tx, rx) = std::sync::mpsc::channel();
    let backlog = Arc::new(AtomicUsize::new(0));
    (
        InboxTx {
            tx,
            backlog: backlog.clone(),
        },
        InboxRx { rx, backlog },
    )
}

impl InboxTx {
    /// Queues an event; false if the stage has stopped.
    pub fn send(&self, event: Inbound) -> bool {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if self.tx.send(event).is_err() {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Events waiting to be handled.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }
}

impl InboxRx {
    pub fn recv_timeout(&self, wait: Duration) -> Result<Inbound, RecvTimeoutError> {
        let event = self.rx.recv_timeout(wait)?;
        self.backlog.fetch_sub(1, Ordering::Relaxed);
        Ok(event)
    }

    pub fn try_recv(&self) -> Result<Inbound, TryRecvError> {
        let event = self.rx.try_recv()?;
        self.backlog.fetch_sub(1, Ordering::Relaxed);
        Ok(event)
    }
}
