//! `ticket`: a concurrency limiter (stage-spec §9.2; seed 001 "ticket으로 메시지 전달", seed
//! 003): at most N holders of a category's tickets at once, across the cluster.
//!
//! ```lua
//! stage.waitfor("login", function(sock, user)      -- _TICKET = "@0x..."
//!   stage.signal(nil, 3000)                        -- hold it 3 s (default 1 s); 0 releases
//! end)
//! stage.signal("ticket:db=login?fb", sock, user)  -- fb("db=login?fb", "@0x..." | false)
//! stage.signal("ticket:db?fb", { login = v, audit = w })   -- one ticket per callback
//! stage.signal("ticket:@db", 10, 60000)            -- (re)size db; it closes in a minute
//! stage.signal("ticket:=db", v)                    -- to stage.waitfor("ticket:db") of
//!                                                   -- every holder and waiter
//! stage.waitfor("ticket:@", function(what, t) end) -- ("cancel", {["@0x..."] = "login"})
//! ```
//!
//! Unlike the reference, every value of a request reaches the callback, feedback and cancel
//! notices are real two-value messages, waiting requests get a freed ticket at once (not at
//! a 1 s poll), and `stage.signal("ticket:@db", 10)` without a close time works.

mod book;
mod category;
mod key;
mod request;
mod send;
mod timers;

use std::time::{Duration, Instant};

use bson::Bson;

use super::{values, Outbox, Request, Service};
use book::{Book, Owner};
pub use key::check_category;
use key::Op;

/// The waiting requests a node keeps by default (`--ticket-queue`).
pub const DEFAULT_QUEUE: usize = 10_000;

pub struct Tickets {
    book: Book,
}

impl Tickets {
    /// The service with the categories of the node's `--ticket CAT=LIMIT` flags and room for
    /// `queue` waiting requests.
    pub fn new(categories: &[(String, i64)], queue: usize) -> Result<Tickets, String> {
        let mut book = Book::new(queue);
        let now = Instant::now();
        let mut seen = std::collections::HashSet::new();
        for (cat, limit) in categories {
            check_category(cat)?;
            if !seen.insert(cat) {
                return Err(format!("ticket category '{cat}' is given twice"));
            }
            if *limit == 0 {
                return Err(format!("ticket category '{cat}': a limit of 0 is closed"));
            }
            book.define(cat, *limit, None, now)?;
        }
        Ok(Tickets { book })
    }

    /// `@cat` with `(limit [, close_ms])`, or the reference's one array `[limit, close_ms]`.
    fn define(&mut self, req: &Request, cat: &str, now: Instant) -> Result<(), String> {
        let list = match req.args.as_slice() {
            [Bson::Array(a)] => a.as_slice(),
            all => all,
        };
        let limit = list
            .first()
            .and_then(values::int)
            .ok_or_else(|| format!("'@{cat}' takes (limit [, close_ms]) with an integer limit"))?;
        // No close time, or one <= 0 (or beyond the clock): the category stays open.
        let close_at = list
            .get(1)
            .and_then(values::int)
            .filter(|ms| *ms > 0)
            .and_then(|ms| now.checked_add(Duration::from_millis(ms.unsigned_abs())));
        self.book.define(cat, limit, close_at, now)
    }

    /// `@0x<handle>` with ms: extend (> 0) or release (<= 0) the sender's ticket.
    fn extend(
        &mut self,
        stage: &str,
        req: &Request,
        handle: u64,
        now: Instant,
    ) -> Result<(), String> {
        let name = key::handle_name(handle);
        let ms = values::number(req.value())
            .filter(|ms| !ms.is_nan())
            .ok_or_else(|| format!("'{name}' takes the ms to hold it (<= 0 releases it)"))?
            as i64;
        self.book.extend(handle, &Owner::of(req), ms, now)?;
        let at = crate::api::waitfor::now_ms();
        if ms <= 0 {
            log::debug!("stage {stage}: {name} released at {at} ms");
        } else {
            log::debug!("stage {stage}: {name} held {ms} ms more at {at} ms");
        }
        Ok(())
    }
}

impl Service for Tickets {
    fn handle(&mut self, out: &Outbox, req: Request) {
        let now = Instant::now();
        let (key, fail) = crate::target::split_fail(&req.key);
        let op = match key::parse(key) {
            Ok(op) => op,
            Err(e) => {
                log::warn!("stage {}: '{}': {e}", out.name(), req.key);
                send::refuse(out, &req, fail, None, &e);
                return;
            }
        };
        // A request is settled by its grant, its feedback or its refusal (request.rs); the
        // other messages once handled.
        let is_handle = matches!(op, Op::Handle(_));
        let done = match op {
            Op::Request(ask) => {
                request::handle(&mut self.book, out, &req, &ask, key, fail, now);
                None
            }
            Op::Handle(h) => Some(self.extend(out.name(), &req, h, now)),
            Op::Define(cat) => Some(self.define(&req, cat, now)),
            Op::Broadcast(cat) => Some(match self.book.audience(cat) {
                Some(audience) => {
                    send::broadcast(out, &req, cat, audience);
                    Ok(())
                }
                None => Err(format!("no category '{cat}'")),
            }),
        };
        match done {
            Some(Ok(())) => out.acknowledge(&req),
            Some(Err(e)) => {
                // A holder releasing a ticket that expired meanwhile is no news.
                let level = if is_handle {
                    log::Level::Debug
                } else {
                    log::Level::Warn
                };
                log::log!(level, "stage {}: '{}': {e}", out.name(), req.key);
                send::refuse(out, &req, fail, None, &e);
            }
            None => {}
        }
        send::events(out, self.book.take_events());
    }

    fn tick(&mut self, out: &Outbox, now: Instant) {
        self.book.tick(now);
        send::events(out, self.book.take_events());
    }

    fn next_due(&self) -> Option<Instant> {
        self.book.next_due()
    }
}
