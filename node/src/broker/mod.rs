//! The broker: client-facing TCP and UDP sockets for Lua (`broker.*`, stage-spec §10).
//!
//! Each socket's I/O runs as one task on the node's tokio runtime ([`tcp`], [`udp`]); what it
//! reads becomes [`socket::Event`]s that the worker pool runs as Lua callbacks, one socket's
//! callbacks in order and never two at once ([`dispatch`]). The input control of seed 002 lives
//! on that path: the reader stops while its socket's queue is full or its rate limit is spent,
//! sockets take turns on the workers, output leaves in `commit`-sized batches, and idle sockets
//! expire.

pub mod addr;
pub mod dispatch;
pub mod frame;
pub mod framing;
pub mod handler;
pub mod limit;
pub mod output;
pub mod socket;
pub mod tcp;
pub mod udp;
pub mod uri;

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::pool::Pool;
use handler::Handler;
use socket::{Event, Kind, Settings, Socket};

/// How long `broker.join` waits for a connection unless told otherwise.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(3000);

/// The sockets of one node.
pub struct Broker {
    io: tokio::runtime::Handle,
    pool: Pool,
    sockets: Mutex<HashMap<u64, Arc<Socket>>>,
    next: AtomicU64,
    /// Unbound UDP sockets for `broker.signal(address, v)` (IPv4, IPv6), made when first used
    /// (a failed attempt, e.g. out of descriptors, is tried again next time).
    senders: [Mutex<Option<Arc<UdpSocket>>>; 2],
}

type Start = Box<dyn FnOnce() + Send>;

thread_local! {
    /// Sockets made by the running callback, started when it returns ([`start_deferred`]).
    static DEFERRED: RefCell<Vec<Start>> = const { RefCell::new(Vec::new()) };
}

/// Starts what the callback that just returned created. A listener accepts, and a connection
/// connects, only once the script that made it has set its callbacks and settings
/// (`socket.close = ...` right after `broker.join` cannot miss an instant failure).
pub fn start_deferred() {
    let starts = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    for start in starts {
        start();
    }
}

fn defer(start: Start, now: bool) {
    if now {
        start();
    } else {
        DEFERRED.with(|d| d.borrow_mut().push(start));
    }
}

/// Raises this process's open-file limit to its hard limit: every client is a descriptor.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                log::warn!("cannot raise the open-file limit to {}", lim.rlim_max);
            }
        }
    }
}

/// Sets a socket option of type `T` on a descriptor we own (best effort: a refused option
/// leaves the default).
fn set_option<T>(fd: std::os::fd::RawFd, level: libc::c_int, name: libc::c_int, value: &T) {
    // SAFETY: `value` is a live `T` and the length passed is its size.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        );
    }
}

/// The errno of an I/O error (EIO when it has none).
pub fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(match e.kind() {
        std::io::ErrorKind::TimedOut => libc::ETIMEDOUT,
        std::io::ErrorKind::InvalidInput => libc::EINVAL,
        _ => libc::EIO,
    })
}

impl Broker {
    pub fn new(io: tokio::runtime::Handle, pool: Pool) -> Arc<Broker> {
        Arc::new(Broker {
            io,
            pool,
            sockets: Mutex::default(),
            next: AtomicU64::new(1),
            senders: Default::default(),
        })
    }

    fn sockets(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Socket>>> {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open socket with this id (`broker.f`).
    pub fn get(&self, id: u64) -> Option<Arc<Socket>> {
        self.sockets().get(&id).cloned()
    }

    /// A new registered socket.
    pub fn open(
        &self,
        stage: &str,
        kind: Kind,
        framing: framing::Framing,
        caps: (usize, usize),
        settings: Settings,
    ) -> Arc<Socket> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let s = Arc::new(Socket::new(
            id,
            stage.to_owned(),
            kind,
            framing,
            caps,
            settings,
        ));
        self.sockets().insert(id, s.clone());
        s
    }

    /// Forgets a socket whose close callback ran.
    pub fn forget(&self, id: u64) {
        self.sockets().remove(&id);
    }

    /// Queues an event for a socket's callbacks and gives the socket a turn if it had none.
    pub fn deliver(&self, socket: &Arc<Socket>, event: Event) {
        if socket.push(event) {
            self.pool.schedule(socket.clone());
        }
    }

    /// Runs `task` on the I/O runtime once the calling callback returned (at once outside
    /// callbacks).
    fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let io = self.io.clone();
        defer(
            Box::new(move || {
                io.spawn(task);
            }),
            !crate::budget::in_callback(),
        );
    }

    /// A socket's I/O ended with `errno` (0: in order): it is kept as `socket.errno` and the
    /// close callback runs.
    pub fn ended(&self, socket: &Arc<Socket>, errno: i32) {
        if errno != 0 {
            socket.set_errno(errno);
        }
        self.deliver(socket, Event::Closed(errno));
    }

    /// Sends one datagram from an unbound socket (`broker.signal(address, v)`).
    pub fn send_datagram(&self, to: SocketAddr, bytes: &[u8]) -> std::io::Result<usize> {
        let (slot, bind) = if to.is_ipv4() {
            (&self.senders[0], "0.0.0.0:0")
        } else {
            (&self.senders[1], "[::]:0")
        };
        let sender = {
            let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
            match &*slot {
                Some(s) => s.clone(),
                None => {
                    let s = UdpSocket::bind(bind)?;
                    s.set_nonblocking(true)?;
                    slot.insert(Arc::new(s)).clone()
                }
            }
        };
        sender.send_to(bytes, to)
    }

    /// `broker.ready`: a TCP listener or a UDP socket (bound now, serving once the calling
    /// callback returns). `f` is the accept callback (TCP) or the receive handler (UDP).
    pub fn ready(
        self: &Arc<Self>,
        stage: &str,
        uri: &uri::Uri,
        f: Option<Arc<Handler>>,
    ) -> Result<Arc<Socket>, std::io::Error> {
        let addr = *uri
            .resolve()?
            .first()
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EADDRNOTAVAIL))?;
        let caps = (uri.input, uri.output);
        match uri.proto {
            uri::Proto::Tcp => {
                let l = std::net::TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                tcp::deepen_backlog(&l);
                let s = self.open(
                    stage,
                    Kind::Listener,
                    uri.framing,
                    caps,
                    Settings::default(),
                );
                s.set_addrs(l.local_addr().ok(), None);
                self.spawn(tcp::accept(self.clone(), s.clone(), l, f));
                Ok(s)
            }
            uri::Proto::Udp => {
                let u = udp::bind(addr, uri.iface)?;
                let settings = Settings {
                    receive: f,
                    ..Settings::default()
                };
                let s = self.open(stage, Kind::Datagram, uri.framing, caps, settings);
                s.set_addrs(u.local_addr().ok(), None);
                self.spawn(udp::serve(self.clone(), s.clone(), u));
                Ok(s)
            }
        }
    }

    /// `broker.join`: connects once the calling callback returns; `f` runs when connected,
    /// the close callback (errno) if it fails or times out.
    pub fn join(
        self: &Arc<Self>,
        stage: &str,
        uri: &uri::Uri,
        f: Option<Arc<Handler>>,
        timeout: Duration,
    ) -> Result<Arc<Socket>, std::io::Error> {
        if uri.proto != uri::Proto::Tcp {
            return Err(std::io::Error::from_raw_os_error(libc::EPROTONOSUPPORT));
        }
        let addrs = uri.resolve()?;
        let s = self.open(
            stage,
            Kind::Stream,
            uri.framing,
            (uri.input, uri.output),
            Settings::default(),
        );
        self.spawn(tcp::connect(self.clone(), s.clone(), addrs, f, timeout));
        Ok(s)
    }
}
