//! Built-in service stages (stage-spec §9): native Rust stages a node hosts beside its Lua
//! stages — `--stage rank=index`, `--stage ticket=ticket`, `--stage route=route`,
//! `--stage agent=curl` — reached with `stage.signal` through the routers like any stage.
//!
//! Each runs on its own thread, like a Lua stage, and takes its inbox one message at a time:
//! [`Request`] is a parsed message, [`Outbox`] sends answers and notices, and the [`Service`]
//! trait is what a service implements (its messages, its timers, its shutdown).

pub mod agent;
pub mod index;
mod outbox;
mod request;
pub mod route;
pub mod ticket;
pub mod values;

use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use outbox::{answer_head, args, notice_head, Outbox, To};
pub use request::Request;

use crate::inbound::{Inbound, InboxRx};
use crate::node::Node;

/// A built-in service, by the name given after `--stage NAME=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// Subscription routing with offer/accept (stage-spec §9.1).
    Route,
    /// Concurrency limiter: categories of tickets (stage-spec §9.2).
    Ticket,
    /// HTTP(S) client (stage-spec §9.4).
    Agent,
    /// Ranked scoreboards persisted under `--index-dir` (stage-spec §9.3).
    Index,
}

impl Builtin {
    /// The built-in service called `name`, if any (`curl` is the original's name of `agent`).
    pub fn from_name(name: &str) -> Option<Builtin> {
        match name {
            "route" => Some(Builtin::Route),
            "ticket" => Some(Builtin::Ticket),
            "agent" | "curl" => Some(Builtin::Agent),
            "index" => Some(Builtin::Index),
            _ => None,
        }
    }

    /// The service's name (as `/status` and `/metrics` show it).
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Route => "route",
            Builtin::Ticket => "ticket",
            Builtin::Agent => "agent",
            Builtin::Index => "index",
        }
    }
}

/// Node settings the services read (`stage-node --help` lists the flags).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Where the `index` service keeps its files.
    pub index_dir: PathBuf,
    /// How long a `route` subscription lives without a `route:@` message.
    pub route_keepalive: Duration,
    /// The `ticket` service's categories and their limits (`--ticket CAT=LIMIT`).
    pub tickets: Vec<(String, i64)>,
    /// How many requests the `ticket` service keeps waiting (`--ticket-queue`).
    pub ticket_queue: usize,
    /// The `agent` service's client settings.
    pub agent: agent::Settings,
}

/// What a built-in service does with its messages.
pub trait Service: Send {
    /// Handles one message (never one past its deadline).
    fn handle(&mut self, out: &Outbox, req: Request);

    /// Runs the service's timers due at `now`.
    fn tick(&mut self, _out: &Outbox, _now: Instant) {}

    /// When `tick` is next due (asked after every tick and every message, so it must be
    /// cheap: a timer a message started counts from then on).
    fn next_due(&self) -> Option<Instant> {
        None
    }

    /// The node is stopping: finish what must not be lost.
    fn stop(&mut self, _out: &Outbox) {}
}

/// Creates the service `kind` for the stage called `name`; a bad setting (an index directory
/// that cannot be created, an unreadable CA file) is a start-up error.
pub fn build(kind: Builtin, name: &str, config: &Config) -> Result<Box<dyn Service>, String> {
    Ok(match kind {
        Builtin::Route => Box::new(route::Route::new(config.route_keepalive)),
        Builtin::Ticket => Box::new(ticket::Tickets::new(&config.tickets, config.ticket_queue)?),
        Builtin::Agent => Box::new(agent::Agent::new(name, &config.agent)?),
        Builtin::Index => Box::new(index::IndexService::new(&config.index_dir)?),
    })
}

/// Starts the thread of `service`, the stage called `name`.
pub fn spawn(
    node: Arc<Node>,
    name: String,
    service: Box<dyn Service>,
    inbox: InboxRx,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("stage:{name}"))
        .spawn(move || run(Outbox::new(node, name), service, inbox))
}

/// Longest sleep of an idle service.
const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// When a tick that panicked runs again.
const TICK_RETRY: Duration = Duration::from_millis(100);

fn run(out: Outbox, mut service: Box<dyn Service>, inbox: InboxRx) {
    let mut due = service.next_due();
    loop {
        let now = Instant::now();
        if due.is_some_and(|t| t <= now) {
            // A tick that panicked is retried shortly, so timers do not stop for good.
            due = guarded(out.name(), || {
                service.tick(&out, now);
                service.next_due()
            })
            .unwrap_or(Some(now + TICK_RETRY));
        }
        let wait = due.map_or(IDLE_WAKE, |t| t.saturating_duration_since(now));
        match inbox.recv_timeout(wait) {
            Ok(Inbound::Message(d)) => {
                let req = match Request::parse(&d) {
                    Ok(r) => r,
                    Err(e) => {
                        log::warn!("stage {}: dropped a message: {e}", out.name());
                        continue;
                    }
                };
                if req.expired(crate::api::waitfor::now_ms()) {
                    log::debug!(
                        "stage {}: dropped '{}' past its deadline",
                        out.name(),
                        req.key
                    );
                    continue;
                }
                guarded(out.name(), || service.handle(&out, req));
                // A message may have started a timer earlier than the one we sleep for.
                due = service.next_due();
            }
            Ok(Inbound::Stop(_)) | Err(RecvTimeoutError::Disconnected) => {
                guarded(out.name(), || service.stop(&out));
                break;
            }
            Ok(other) => log::debug!("stage {}: ignored {other:?}", out.name()),
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    log::debug!("stage {}: stopped", out.name());
}

/// Runs `f`; a bug in a service costs the message that hit it, not the stage.
fn guarded<T>(name: &str, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(_) => {
            log::error!("stage {name}: the service panicked; it goes on with the next message");
            None
        }
    }
}
