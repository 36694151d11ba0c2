//! The peer workloads of WORKLOADS.md — W1 fan-in, W2 request-reply, W3 fan-out — run the same
//! way against the stage router, nats-server and redis-server, each in one invocation.
//!
//! A system is reached through a [`Conn`]: a TCP connection set up for a [`Role`] (what it
//! subscribes to, where it publishes, its reply subject) and a [`Codec`] that writes and parses
//! that system's protocol in place. The drivers ([`pubsub`], [`reqrep`]) never look at protocol
//! bytes themselves.

mod nats;
pub mod payload;
mod pubsub;
mod reqrep;
mod resp;
mod servers;
mod stage;
mod tally;

use std::ops::Range;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub use servers::{run, Wire};

/// What a connection does.
#[derive(Clone, Copy, Debug, Default)]
pub struct Role<'a> {
    /// The subject it receives (a stage: the name it registers, a member of that class).
    pub subscribe: Option<&'a str>,
    /// The subject `publish` sends to.
    pub publish: Option<&'a str>,
    /// The reply subject its publishes name (NATS), or that answers go to (Redis, stage message
    /// id).
    pub reply: Option<&'a str>,
}

/// Something read from a server.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A delivered message: where its payload is, and its reply address (system-specific
    /// bytes for [`Codec::answer`]), both relative to the parsed slice.
    Message {
        payload: Range<usize>,
        reply: Range<usize>,
    },
    /// The server pings the client (key to echo).
    Ping(u64),
    /// The answer to our ping.
    Pong,
    /// Redis: a `PUBLISH` reply, the number of receivers.
    Published(i64),
    Other,
}

/// One system's protocol for one connection.
#[derive(Clone)]
pub enum Codec {
    Stage(stage::Codec),
    Nats(nats::Codec),
    Redis(resp::Codec),
}

impl Codec {
    /// Appends a publish of `payload` to the connection's subject.
    pub fn publish(&self, out: &mut Vec<u8>, payload: &[u8]) {
        match self {
            Codec::Stage(c) => c.publish(out, payload),
            Codec::Nats(c) => c.publish(out, payload),
            Codec::Redis(c) => c.publish(out, payload),
        }
    }

    /// Appends the answer to a message whose reply address is `reply`.
    pub fn answer(&self, out: &mut Vec<u8>, reply: &[u8], payload: &[u8]) {
        match self {
            Codec::Stage(c) => c.answer(out, reply, payload),
            Codec::Nats(c) => c.answer(out, reply, payload),
            Codec::Redis(c) => c.answer(out, payload),
        }
    }

    /// Appends a ping; the server's [`Event::Pong`] means it processed everything before it.
    pub fn ping(&self, out: &mut Vec<u8>) {
        match self {
            Codec::Stage(c) => c.ping(out),
            Codec::Nats(c) => c.ping(out),
            Codec::Redis(c) => c.ping(out),
        }
    }

    /// Appends the answer to a server's ping.
    pub fn pong(&self, out: &mut Vec<u8>, key: u64) {
        match self {
            Codec::Stage(c) => c.pong(out, key),
            Codec::Nats(c) => c.pong(out),
            Codec::Redis(_) => {}
        }
    }

    /// The event at the start of `buf` and its length, or `None` while it is incomplete.
    pub fn parse(&self, buf: &[u8]) -> Result<Option<(usize, Event)>, String> {
        match self {
            Codec::Stage(c) => c.parse(buf),
            Codec::Nats(c) => c.parse(buf),
            Codec::Redis(c) => c.parse(buf),
        }
    }
}

/// A server under test.
#[derive(Clone, Debug)]
pub enum System {
    Stage(String),
    Nats(String),
    Redis(String),
}

impl System {
    /// The `peer=` name of RESULT lines.
    pub fn name(&self) -> &'static str {
        match self {
            System::Stage(_) => "stage",
            System::Nats(_) => "nats",
            System::Redis(_) => "redis",
        }
    }

    /// Opens a connection for `role`, set up and confirmed by the server (subscriptions
    /// registered, WORKLOADS.md "Readiness").
    pub async fn connect(&self, role: Role<'_>) -> Result<Conn, String> {
        let addr = match self {
            System::Stage(a) | System::Nats(a) | System::Redis(a) => a,
        };
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("{}: connect {addr}: {e}", self.name()))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (codec, hello) = match self {
            System::Stage(_) => (Codec::Stage(stage::setup(&mut stream, &role).await?), None),
            System::Nats(_) => {
                let (c, out) = nats::setup(&role);
                (Codec::Nats(c), Some(out))
            }
            System::Redis(_) => {
                let (c, out) = resp::setup(&role);
                (Codec::Redis(c), Some(out))
            }
        };
        let mut conn = Conn {
            stream,
            codec,
            input: Vec::with_capacity(READ_SIZE),
            start: 0,
        };
        if let Some(out) = hello {
            conn.write(&out).await?;
            loop {
                match conn.next_event().await? {
                    Some(Event::Pong) => break,
                    Some(_) => {}
                    None => return Err(format!("{}: closed during set-up", self.name())),
                }
            }
        }
        Ok(conn)
    }
}

/// Largest read (WORKLOADS.md: reads of up to 256 KiB).
pub const READ_SIZE: usize = 256 * 1024;

/// A connection (or its read half) with its protocol and the bytes read but not parsed yet.
pub struct Conn<S = TcpStream> {
    pub stream: S,
    pub codec: Codec,
    input: Vec<u8>,
    /// Where the unparsed bytes of `input` start.
    start: usize,
}

impl Conn {
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// The read side (with what was read already) and the write side, for two tasks.
    pub fn split(self) -> (Conn<OwnedReadHalf>, OwnedWriteHalf) {
        let (rd, wr) = self.stream.into_split();
        let reader = Conn {
            stream: rd,
            codec: self.codec,
            input: self.input,
            start: self.start,
        };
        (reader, wr)
    }
}

impl<S: AsyncRead + Unpin> Conn<S> {
    /// Reads once (up to 256 KiB); false when the server closed the connection.
    pub async fn fill(&mut self) -> Result<bool, String> {
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        // Reads into spare capacity: no zeroing of 256 KiB per read.
        self.input.reserve(READ_SIZE);
        match self.stream.read_buf(&mut self.input).await {
            Ok(n) => Ok(n > 0),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// The next complete event in what was read, with the bytes it refers to (`Message`
    /// ranges index into the returned slice); `None` when more must be read.
    pub fn parsed(&mut self) -> Result<Option<(Event, &[u8])>, String> {
        let rest = &self.input[self.start..];
        match self.codec.parse(rest)? {
            None => Ok(None),
            Some((n, event)) => {
                let at = self.start;
                self.start += n;
                Ok(Some((event, &self.input[at..at + n])))
            }
        }
    }

    /// The next event, reading as needed; `None` if the connection closed.
    pub async fn next_event(&mut self) -> Result<Option<Event>, String> {
        loop {
            if let Some((e, _)) = self.parsed()? {
                return Ok(Some(e));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }
}

/// Appends `n` in decimal (the text protocols' lengths), without allocating.
pub fn push_decimal(out: &mut Vec<u8>, n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A decimal length of a text protocol; `None` for anything but up to 18 digits.
pub fn parse_decimal(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 18 {
        return None;
    }
    s.iter().try_fold(0usize, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + (b - b'0') as usize)
    })
}

/// The offset of the first CRLF in `b`.
pub fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}
