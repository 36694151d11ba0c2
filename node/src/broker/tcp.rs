//! TCP sockets: the accept loop of a listener, `broker.join`'s connect, and the one task that
//! reads and writes a connection (stage-spec §10.3, seed 002's input control).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use tokio::net::{TcpListener, TcpStream};

use super::frame::Decoder;
use super::handler::Handler;
use super::limit::Meter;
use super::socket::{Event, Kind, Settings, Socket};
use super::{errno_of, Broker};

/// Reads one connection makes before the I/O thread turns to the others.
const READS_PER_TURN: usize = 4;

/// How long a closing connection may take to write what is queued for it (a peer that stopped
/// reading would otherwise hold it open forever), and how long a peer that finished sending
/// waits for the replies to what it sent.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// How long a listener that ran out of descriptors waits before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

thread_local! {
    /// The I/O thread's read buffer: connections hold no read buffer of their own while idle.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 << 10]);
}

/// Accepts connections until the listener is closed.
pub async fn accept(
    broker: Arc<Broker>,
    listener: Arc<Socket>,
    std: std::net::TcpListener,
    on_accept: Option<Arc<Handler>>,
) {
    let l = match TcpListener::from_std(std) {
        Ok(l) => l,
        Err(e) => {
            log::error!("broker: listener {}: {e}", listener.id);
            broker.ended(&listener, errno_of(&e));
            return;
        }
    };
    let errno = loop {
        if let Some((errno, _)) = listener.io(|io| io.close) {
            break errno;
        }
        tokio::select! {
            r = l.accept() => match r {
                Ok((stream, peer)) => accepted(&broker, &listener, stream, peer, &on_accept),
                Err(e) => {
                    log::warn!("broker: listener {}: accept: {e}", listener.id);
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)) {
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
            },
            _ = listener.wake.notified() => {}
        }
    };
    broker.ended(&listener, errno);
}

/// A new connection inherits the listener's callbacks and settings (§10.3 `broker.ready`).
fn accepted(
    broker: &Arc<Broker>,
    listener: &Socket,
    stream: TcpStream,
    peer: SocketAddr,
    on_accept: &Option<Arc<Handler>>,
) {
    tune(&stream);
    let s = broker.open(
        &listener.stage,
        Kind::Stream,
        listener.framing,
        (listener.input_cap, listener.output_cap),
        listener.settings(),
    );
    s.set_addrs(stream.local_addr().ok(), Some(peer));
    if let Some(h) = on_accept {
        s.hold();
        broker.deliver(&s, Event::Accepted(h.clone()));
    }
    tokio::spawn(serve(broker.clone(), s, stream));
}

/// Raises a listener's accept queue from std's 128 to the system's maximum: a burst of clients
/// reconnecting at once (after a restart) would otherwise see dropped SYNs and a 1 s retry.
pub fn deepen_backlog(l: &std::net::TcpListener) {
    // SAFETY: listen() again on a listening socket we own only changes its backlog.
    unsafe {
        libc::listen(l.as_raw_fd(), libc::SOMAXCONN);
    }
}

/// No Nagle delay (replies are small and batched by `commit`), and keep-alive probes so that a
/// peer that vanished without a word is found even when no `expire` is set.
fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let set = |level, name, v: libc::c_int| super::set_option(fd, level, name, &v);
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 60);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 10);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
}

/// `broker.join`: tries the addresses in turn within `timeout`.
pub async fn connect(
    broker: Arc<Broker>,
    s: Arc<Socket>,
    addrs: Vec<SocketAddr>,
    on_connect: Option<Arc<Handler>>,
    timeout: Duration,
) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut errno = libc::EADDRNOTAVAIL;
    for addr in addrs {
        if s.io(|io| io.close.is_some()) {
            errno = libc::ECANCELED;
            break;
        }
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                tune(&stream);
                s.set_addrs(stream.local_addr().ok(), Some(addr));
                if let Some(h) = on_connect {
                    s.hold();
                    broker.deliver(&s, Event::Connected(h));
                }
                serve(broker, s, stream).await;
                return;
            }
            Ok(Err(e)) => errno = errno_of(&e),
            Err(_) => {
                errno = libc::ETIMEDOUT;
                break;
            }
        }
    }
    broker.ended(&s, errno);
}

/// Serves a connection until it closes, then queues its close event.
pub async fn serve(broker: Arc<Broker>, s: Arc<Socket>, stream: TcpStream) {
    let errno = Conn::new(&s).run(&broker, &s, &stream).await;
    // Closed before the close callback runs: the peer learns at once that we are done.
    drop(stream);
    broker.ended(&s, errno);
}

/// The I/O state of one connection that lives in its task.
struct Conn {
    decoder: Decoder,
    /// Messages read but held back by the rate limit (at most one read's worth).
    frames: Vec<Bytes>,
    meter: Meter,
    /// Output taken from the socket and not yet written.
    writing: Bytes,
    last_active: Instant,
    /// When the output waiting for the next batch began.
    out_since: Option<Instant>,
    /// When the connection began to end: a drained close was asked, or the peer finished
    /// sending (`eof`).
    ending: Option<(Instant, bool)>,
}

impl Conn {
    fn new(s: &Socket) -> Conn {
        let now = Instant::now();
        Conn {
            decoder: Decoder::new(s.framing, s.input_cap),
            frames: Vec::new(),
            meter: Meter::new(s.settings().limit, now),
            writing: Bytes::new(),
            last_active: now,
            out_since: None,
            ending: None,
        }
    }

    /// Returns the errno the socket closed with (0: in order).
    async fn run(&mut self, broker: &Broker, s: &Arc<Socket>, stream: &TcpStream) -> i32 {
        loop {
            let now = Instant::now();
            let settings: Settings = s.settings();
            self.meter.set(settings.limit, now);
            let (close, has_out, flush, held) =
                s.io(|io| (io.close, !io.out.is_empty(), io.flush, io.held));
            let draining = matches!(close, Some((_, true)));
            let written = self.writing.is_empty() && !has_out;
            if let Some((errno, drain)) = close {
                if !drain || written {
                    return errno;
                }
                self.ending.get_or_insert((now, false));
            }
            if let Some((since, eof)) = self.ending {
                // The peer finished sending: what it sent runs and its replies go out first
                // (a client may half-close after its last request).
                if eof && written && self.frames.is_empty() && s.settled() {
                    return 0;
                }
                if now.duration_since(since) >= DRAIN_LIMIT {
                    log::info!(
                        "broker: socket {}: not drained within {DRAIN_LIMIT:?}",
                        s.id
                    );
                    return if eof { 0 } else { libc::ETIMEDOUT };
                }
            }
            // Output leaves in batches: what is committed within `commit` ms of the first
            // byte goes out together.
            if !has_out {
                self.out_since = None;
            } else if self.out_since.is_none() {
                self.out_since = Some(now);
            }
            let commit_at = self.out_since.map_or(now, |t| t + settings.commit);
            if self.writing.is_empty() && has_out && (flush || draining || now >= commit_at) {
                self.out_since = None;
                self.writing = s.io(|io| {
                    io.flush = false;
                    let b = std::mem::take(&mut io.out).freeze();
                    io.writing = b.len();
                    b
                });
            }
            if !self.writing.is_empty() {
                match stream.try_write(&self.writing) {
                    Ok(n) => {
                        self.writing.advance(n);
                        let left = self.writing.len();
                        s.io(|io| io.writing = left);
                        self.last_active = now;
                        if left == 0 {
                            // Release the batch's memory before going idle.
                            self.writing = Bytes::new();
                        }
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return errno_of(&e),
                }
            }
            if let Some(expire) = settings.expire {
                // Messages held back by the rate limit are traffic too.
                if self.frames.is_empty() && now.duration_since(self.last_active) >= expire {
                    log::info!("broker: socket {} idle for {expire:?}: closing", s.id);
                    return libc::ETIMEDOUT;
                }
            }
            let eof = matches!(self.ending, Some((_, true)));
            let throttled = self.pass(broker, s, now, eof);
            let read = close.is_none()
                && self.ending.is_none()
                && !held
                && self.frames.is_empty()
                && !s.backlogged();
            let wake_at = [
                self.ending.map(|(since, _)| since + DRAIN_LIMIT),
                settings.expire.map(|e| self.last_active + e),
                throttled,
                (self.writing.is_empty() && has_out).then_some(commit_at),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = tokio::time::sleep_until(
                wake_at
                    .unwrap_or_else(|| now + Duration::from_secs(3600))
                    .into(),
            );
            tokio::select! {
                r = stream.readable(), if read => {
                    if let Err(e) = r {
                        return errno_of(&e);
                    }
                    if let Some(errno) = self.read(broker, s, stream) {
                        return errno;
                    }
                }
                r = stream.writable(), if !self.writing.is_empty() => {
                    if let Err(e) = r {
                        return errno_of(&e);
                    }
                }
                _ = s.wake.notified() => {}
                _ = sleep, if wake_at.is_some() => {}
            }
        }
    }

    /// Reads what is there (a few reads at most); `Some(errno)` when the connection breaks.
    fn read(&mut self, broker: &Broker, s: &Arc<Socket>, stream: &TcpStream) -> Option<i32> {
        // No read takes in more than the input size: a burst of tiny frames cannot queue
        // more than about `IN` bytes of messages per connection.
        let most = s.input_cap.clamp(16, 64 << 10);
        for _ in 0..READS_PER_TURN {
            let got = SCRATCH.with(|b| {
                let mut b = b.borrow_mut();
                match stream.try_read(&mut b[..most]) {
                    Ok(0) => Ok(None),
                    Ok(n) => {
                        let fed = self.decoder.feed(&b[..n], &mut self.frames);
                        fed.map(|()| Some(n)).map_err(|e| {
                            log::warn!(
                                "broker: socket {} ({}): {e}; closing it",
                                s.id,
                                peer_text(s)
                            );
                            libc::EBADMSG
                        })
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(Some(0)),
                    Err(e) => Err(errno_of(&e)),
                }
            });
            let now = Instant::now();
            match got {
                // End of stream: finish what the peer sent, then close.
                Ok(None) => {
                    self.ending = Some((now, true));
                    return None;
                }
                Ok(Some(0)) => return None,
                Ok(Some(_)) => {}
                Err(errno) => return Some(errno),
            }
            self.last_active = now;
            if self.pass(broker, s, now, false).is_some() || !self.frames.is_empty() {
                return None;
            }
        }
        None
    }

    /// Hands the workers the messages the rate limit and the socket's queue let through
    /// (`all`: every held message, the peer has finished); returns when the rest may go on by
    /// the rate limit, if that is what holds them.
    fn pass(
        &mut self,
        broker: &Broker,
        s: &Arc<Socket>,
        now: Instant,
        all: bool,
    ) -> Option<Instant> {
        let mut held = std::mem::take(&mut self.frames).into_iter();
        while let Some(frame) = held.next() {
            if !all && (s.backlogged() || !self.meter.take(frame.len(), now)) {
                self.frames = std::iter::once(frame).chain(held).collect();
                break;
            }
            self.last_active = now;
            broker.deliver(s, Event::Received(frame, None));
        }
        if self.frames.is_empty() {
            // Nothing held: give the list's memory back while the connection idles.
            self.frames = Vec::new();
            None
        } else {
            self.meter.resume_at(now)
        }
    }
}

/// The peer's address for log lines.
fn peer_text(s: &Socket) -> String {
    s.addrs()
        .1
        .map_or_else(|| "?".to_owned(), |a| a.to_string())
}
