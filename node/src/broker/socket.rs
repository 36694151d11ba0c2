//! One broker socket as both sides see it: the I/O task that owns the OS socket, and the Lua
//! callbacks that run on the workers (stage-spec §10.4).
//!
//! Everything mutable sits behind one small mutex: settings and user values that scripts change
//! from any thread, the events waiting for the socket's turn on a worker, and the output waiting
//! for the I/O task. An idle connection holds no buffers (both queues are empty and unallocated),
//! which is what keeps 10,000 idle clients cheap.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::Notify;

use super::framing::Framing;
use super::handler::Handler;
use super::limit::Limit;

/// Events a socket queues before its reader waits for the workers (with `IN` bytes, whichever
/// comes first): what bounds a flooding client's share of memory.
pub const MAX_QUEUED: usize = 256;

/// The least a queued datagram counts against the output cap.
pub const DATAGRAM_COST: usize = 64;

/// What kind of OS socket this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Listener,
    Stream,
    Datagram,
}

/// Something for the socket's Lua callbacks, run in order on a worker.
pub enum Event {
    /// A connection was accepted: the listener's accept callback decides about it.
    Accepted(Arc<Handler>),
    /// `broker.join` connected: its callback runs.
    Connected(Arc<Handler>),
    /// A message from the network (with the sender of a datagram).
    Received(Bytes, Option<SocketAddr>),
    /// `broker.signal(socket, v)`: the receive handler runs with a value encoded in this
    /// process (`value::encode_value`).
    Signalled(Bytes, Option<SocketAddr>),
    /// `broker.submit(socket, f, ...)`: `[f, args...]` as a job body.
    Submitted(Bytes),
    /// The socket closed with this errno (0 = closed in order); the close callback runs.
    Closed(i32),
}

impl Event {
    fn size(&self) -> usize {
        match self {
            Event::Received(b, _) | Event::Signalled(b, _) | Event::Submitted(b) => b.len(),
            _ => 0,
        }
    }
}

/// The settings a script can change (§10.4 "Writable").
#[derive(Clone, Default)]
pub struct Settings {
    pub receive: Option<Arc<Handler>>,
    pub close: Option<Arc<Handler>>,
    /// Close after this long without traffic (`expire`, ms); `None` = never.
    pub expire: Option<Duration>,
    /// Hold output this long from the first byte of a batch (`commit`, ms; 0 = write at once).
    pub commit: Duration,
    /// Input rate limits (`limit`).
    pub limit: Limit,
}

/// What the I/O task reads when it wakes.
pub struct Io {
    /// Output bytes (streams) waiting to be written.
    pub out: BytesMut,
    /// Output datagrams and their destinations, and what they count against the output cap.
    pub datagrams: VecDeque<(Bytes, SocketAddr)>,
    pub datagram_bytes: usize,
    /// Bytes taken by the I/O task but not yet written (counted against the output cap).
    pub writing: usize,
    /// Write at once, whatever `commit` says (`socket.commit()` with no value).
    pub flush: bool,
    /// Close requested (`broker.close`, a refused connection, a slow consumer): the errno the
    /// close callback hears, and whether pending output is written first.
    pub close: Option<(i32, bool)>,
    /// The reader waits for the workers (the queue is full, or it must run dry before the
    /// connection ends); the next event taken wakes it.
    pub starved: bool,
    /// Nothing is read until the accept or connect callback ran, so that the settings it
    /// makes (`limit`, `expire`, the receive handler) apply from the first byte.
    pub held: bool,
}

struct State {
    settings: Settings,
    values: HashMap<String, Bytes>,
    events: VecDeque<Event>,
    queued_bytes: usize,
    /// The socket is in the pool's ready queue or on a worker.
    scheduled: bool,
    /// The close event was queued: nothing more is accepted.
    closed: bool,
    io: Io,
}

/// A broker socket.
pub struct Socket {
    pub id: u64,
    /// The stage its callbacks run for (`_STAGE`).
    pub stage: String,
    pub kind: Kind,
    pub framing: Framing,
    /// Largest message in (`IN`), and most output held (`OUT`) before the peer counts as a
    /// slow consumer.
    pub input_cap: usize,
    pub output_cap: usize,
    addrs: Mutex<(Option<SocketAddr>, Option<SocketAddr>)>,
    errno: AtomicI32,
    state: Mutex<State>,
    /// Wakes the I/O task: output queued, room in the queue, settings changed, close asked.
    pub wake: Notify,
}

/// Why `commit` did not queue output.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Closed,
    /// Over the output cap: the socket is being closed as a slow consumer.
    Full,
}

impl Socket {
    pub fn new(
        id: u64,
        stage: String,
        kind: Kind,
        framing: Framing,
        caps: (usize, usize),
        settings: Settings,
    ) -> Socket {
        Socket {
            id,
            stage,
            kind,
            framing,
            input_cap: caps.0,
            output_cap: caps.1,
            addrs: Mutex::new((None, None)),
            errno: AtomicI32::new(0),
            state: Mutex::new(State {
                settings,
                values: HashMap::new(),
                events: VecDeque::new(),
                queued_bytes: 0,
                scheduled: false,
                closed: false,
                io: Io {
                    out: BytesMut::new(),
                    datagrams: VecDeque::new(),
                    datagram_bytes: 0,
                    writing: 0,
                    flush: false,
                    close: None,
                    starved: false,
                    held: false,
                },
            }),
            wake: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// (local, peer) addresses.
    pub fn addrs(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        *self.addrs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_addrs(&self, local: Option<SocketAddr>, peer: Option<SocketAddr>) {
        *self.addrs.lock().unwrap_or_else(|p| p.into_inner()) = (local, peer);
    }

    /// The last socket error (`socket.errno`).
    pub fn errno(&self) -> i32 {
        self.errno.load(Ordering::Relaxed)
    }

    pub fn set_errno(&self, errno: i32) {
        self.errno.store(errno, Ordering::Relaxed);
    }

    pub fn settings(&self) -> Settings {
        self.state().settings.clone()
    }

    /// Changes settings and wakes the I/O task (a new `expire`, `commit` or `limit` applies at
    /// once).
    pub fn configure(&self, change: impl FnOnce(&mut Settings)) {
        change(&mut self.state().settings);
        self.wake.notify_one();
    }

    /// A user value (encoded with `value::encode_value`).
    pub fn value(&self, name: &str) -> Option<Bytes> {
        self.state().values.get(name).cloned()
    }

    pub fn set_value(&self, name: &str, v: Option<Bytes>) {
        let mut s = self.state();
        match v {
            Some(v) => s.values.insert(name.to_owned(), v),
            None => s.values.remove(name),
        };
    }

    /// Queues an event; returns whether the socket must be handed to the pool (it was idle).
    /// Nothing is queued after the close event.
    #[must_use]
    pub fn push(&self, event: Event) -> bool {
        let mut s = self.state();
        if s.closed {
            return false;
        }
        if matches!(event, Event::Closed(_)) {
            s.closed = true;
        }
        s.queued_bytes += event.size();
        s.events.push_back(event);
        !std::mem::replace(&mut s.scheduled, true)
    }

    /// Whether every queued event has run (nothing queued, no turn in progress); marks the
    /// reader as waiting so that the end of the turn wakes it.
    pub fn settled(&self) -> bool {
        let mut s = self.state();
        let done = s.events.is_empty() && !s.scheduled;
        s.io.starved |= !done;
        done
    }

    /// Whether the reader should wait for the workers before reading more (the queue holds
    /// `IN` bytes or [`MAX_QUEUED`] events); marks it starved so that the worker wakes it.
    pub fn backlogged(&self) -> bool {
        let mut s = self.state();
        let full = s.events.len() >= MAX_QUEUED || s.queued_bytes >= self.input_cap;
        s.io.starved |= full;
        full
    }

    /// The next event for this socket's turn; `None` ends the turn (the socket is idle again).
    pub fn pop(&self) -> Option<Event> {
        let mut s = self.state();
        let event = s.events.pop_front();
        match &event {
            Some(e) => s.queued_bytes -= e.size(),
            None => {
                s.scheduled = false;
                // An idle socket keeps no queue allocation (10,000 idle clients, issue 6).
                s.events = VecDeque::new();
            }
        }
        // A reader waiting for room in the queue, or for it to run dry, hears of it.
        let wake = std::mem::take(&mut s.io.starved);
        drop(s);
        if wake {
            self.wake.notify_one();
        }
        event
    }

    /// Ends a turn that used its quantum: true if events are left (the socket goes to the back
    /// of the ready queue), false if it is idle.
    pub fn yield_turn(&self) -> bool {
        let mut s = self.state();
        s.scheduled = !s.events.is_empty();
        s.scheduled
    }

    /// Queues stream output. Over the output cap the socket is closed as a slow consumer.
    pub fn write(&self, bytes: &[u8]) -> Result<usize, Refused> {
        let mut s = self.state();
        if s.closed || s.io.close.is_some() {
            return Err(Refused::Closed);
        }
        if s.io.out.len() + s.io.writing + bytes.len() > self.output_cap {
            s.io.close = Some((libc::ENOBUFS, false));
            drop(s);
            self.wake.notify_one();
            return Err(Refused::Full);
        }
        s.io.out.extend_from_slice(bytes);
        drop(s);
        self.wake.notify_one();
        Ok(bytes.len())
    }

    /// Queues a datagram to `to`; past the output cap it is dropped (datagrams may be lost).
    pub fn send_to(&self, bytes: Bytes, to: SocketAddr) -> Result<usize, Refused> {
        let mut s = self.state();
        if s.closed || s.io.close.is_some() {
            return Err(Refused::Closed);
        }
        // Every datagram counts at least a little, so empty ones cannot pile up unbounded.
        let cost = bytes.len().max(DATAGRAM_COST);
        if s.io.datagram_bytes + cost > self.output_cap {
            return Err(Refused::Full);
        }
        s.io.datagram_bytes += cost;
        let n = bytes.len();
        s.io.datagrams.push_back((bytes, to));
        drop(s);
        self.wake.notify_one();
        Ok(n)
    }

    /// `socket.commit()` with no value: write what is held now.
    pub fn flush(&self) {
        let mut s = self.state();
        s.io.flush = !s.io.out.is_empty();
        drop(s);
        self.wake.notify_one();
    }

    /// Asks the I/O task to close the socket (after writing what is held if `drain`).
    pub fn close(&self, errno: i32, drain: bool) {
        let mut s = self.state();
        if s.io.close.is_none() {
            s.io.close = Some((errno, drain));
        }
        drop(s);
        self.wake.notify_one();
    }

    /// Holds input until [`Socket::release`] (the accept or connect callback is queued).
    pub fn hold(&self) {
        self.state().io.held = true;
    }

    /// The accept or connect callback ran: reading starts.
    pub fn release(&self) {
        self.state().io.held = false;
        self.wake.notify_one();
    }

    /// Runs `f` on the I/O side of the state.
    pub fn io<T>(&self, f: impl FnOnce(&mut Io) -> T) -> T {
        f(&mut self.state().io)
    }
}
