//! What a stage's main loop receives.

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
