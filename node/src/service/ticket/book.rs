//! The tickets of one `ticket` service (stage-spec §9.2): categories, waiting requests and
//! holds. No I/O here: what must be sent comes out as [`Event`]s, in the order it happened.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bson::Bson;

use super::category::Category;
use super::key::handle_name;
use super::timers::{Timer, Timers};

/// How long a ticket is held after its grant unless extended (stage-spec §9.2).
pub const HOLD: Duration = Duration::from_secs(1);

/// The longest hold one extension gives.
pub const MAX_HOLD: Duration = Duration::from_secs(24 * 3600);

/// The most categories one service keeps (scripts create them with `ticket:@cat`).
pub const MAX_CATEGORIES: usize = 10_000;

/// Who asked for a ticket: a stage on a node. Answers and notices go there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    pub stage: String,
    pub instance: u32,
}

/// One request message: who sent it, the request id its grants answer (0: none), and until
/// when it may wait.
#[derive(Debug, Clone)]
pub struct Requester {
    pub owner: Owner,
    pub corr: u64,
    pub deadline: Option<Instant>,
}

/// `cb(values...)` of `owner` may run now, holding ticket `handle`; `corr` is the request
/// to answer.
#[derive(Debug, PartialEq)]
pub struct Grant {
    pub handle: u64,
    pub owner: Owner,
    pub cb: String,
    pub corr: u64,
    pub values: Vec<Bson>,
}

/// Something to tell a requester.
#[derive(Debug, PartialEq)]
pub enum Event {
    Grant(Grant),
    /// The ticket (held or waited for) is gone: expired, or its category closed.
    Cancel {
        handle: u64,
        owner: Owner,
        cb: String,
    },
    /// Request `corr` of `owner` ended without a grant (withdrawn, or cancelled while it
    /// waited): settle it, so that its fail path does not run as well.
    Settle {
        owner: Owner,
        corr: u64,
    },
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    Granted(u64),
    Queued(u64),
}

struct Ticket {
    cat: String,
    owner: Owner,
    cb: String,
    corr: u64,
    state: State,
}

enum State {
    /// In the queue with the values for the callback, until the request's deadline.
    Waiting {
        values: Vec<Bson>,
        until: Option<Instant>,
    },
    Held {
        until: Instant,
    },
}

pub struct Book {
    categories: HashMap<String, Category>,
    tickets: HashMap<u64, Ticket>,
    timers: Timers,
    next_handle: u64,
    /// Requests waiting, over all categories, and how many may.
    waiting: usize,
    queue_cap: usize,
    events: Vec<Event>,
}

impl Book {
    /// An empty book; handles start at a random number, so that a handle kept from an
    /// earlier run of the service does not name a new ticket.
    pub fn new(queue_cap: usize) -> Book {
        Book {
            categories: HashMap::new(),
            tickets: HashMap::new(),
            timers: Timers::default(),
            next_handle: u64::from(rand::random::<u32>()) << 16 | 1,
            waiting: 0,
            queue_cap,
            events: Vec::new(),
        }
    }

    /// What happened since the last call, in order.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Creates category `cat` or gives it a new limit and close time. Limit 0 closes it.
    /// Creates, resizes or closes category `cat` (a script's `ticket:@cat`; at most
    /// [`MAX_CATEGORIES`] exist, so scripts cannot grow the service without bound).
    pub fn define(
        &mut self,
        cat: &str,
        limit: i64,
        close_at: Option<Instant>,
        now: Instant,
    ) -> Result<(), String> {
        let full = self.categories.len() >= MAX_CATEGORIES;
        match self.categories.get_mut(cat) {
            Some(c) => c.resize(limit, close_at),
            None if limit == 0 => return Err(format!("no category '{cat}' to close")),
            None if full => {
                return Err(format!(
                    "no room for category '{cat}': {MAX_CATEGORIES} categories exist"
                ))
            }
            None => {
                self.categories
                    .insert(cat.to_owned(), Category::new(limit, close_at));
            }
        }
        if let Some(at) = close_at {
            self.timers.add(at, Timer::Close(cat.to_owned()));
        }
        if limit == 0 {
            self.close(cat);
        } else {
            self.fill(cat, now);
        }
        Ok(())
    }

    /// Asks for a ticket of `cat` for callback `cb(values...)` of `from`, granted now or
    /// queued until the request's deadline.
    pub fn request(
        &mut self,
        from: &Requester,
        cat: &str,
        cb: &str,
        values: Vec<Bson>,
        now: Instant,
    ) -> Result<Admitted, String> {
        let Some(c) = self.categories.get_mut(cat) else {
            return Err(format!("no category '{cat}'"));
        };
        if c.closed {
            return Err(format!("category '{cat}' is closed"));
        }
        // Nobody jumps the queue: a free ticket with requests waiting goes to them.
        let grant = c.free() > 0 && c.waiting.is_empty();
        if !grant && !c.queues() {
            return Err(format!(
                "no free ticket in '{cat}' (it keeps no waiting queue)"
            ));
        }
        if !grant && self.waiting >= self.queue_cap {
            return Err(format!(
                "the waiting queue is full ({} requests)",
                self.queue_cap
            ));
        }
        let handle = self.next_handle;
        self.next_handle += 1;
        let (state, admitted) = if grant {
            c.held.insert(handle);
            let until = now + HOLD;
            self.timers.add(until, Timer::Ticket(handle));
            self.events.push(Event::Grant(Grant {
                handle,
                owner: from.owner.clone(),
                cb: cb.to_owned(),
                corr: from.corr,
                values,
            }));
            (State::Held { until }, Admitted::Granted(handle))
        } else {
            c.waiting.insert(handle);
            self.waiting += 1;
            if let Some(at) = from.deadline {
                self.timers.add(at, Timer::Ticket(handle));
            }
            let until = from.deadline;
            (State::Waiting { values, until }, Admitted::Queued(handle))
        };
        self.tickets.insert(
            handle,
            Ticket {
                cat: cat.to_owned(),
                owner: from.owner.clone(),
                cb: cb.to_owned(),
                corr: from.corr,
                state,
            },
        );
        Ok(admitted)
    }

    /// Ticket `handle` of `owner`: held until now + `ms`, or released (`ms <= 0`; a waiting
    /// request is withdrawn). Extending a request that still waits changes nothing: it waits
    /// until its deadline.
    pub fn extend(
        &mut self,
        handle: u64,
        owner: &Owner,
        ms: i64,
        now: Instant,
    ) -> Result<(), String> {
        let Some(t) = self.tickets.get_mut(&handle) else {
            return Err(format!("no ticket {}", handle_name(handle)));
        };
        if t.owner != *owner {
            return Err(format!(
                "ticket {} belongs to stage '{}' on node {}",
                handle_name(handle),
                t.owner.stage,
                t.owner.instance
            ));
        }
        if ms <= 0 {
            if let Some(t) = self.remove(handle) {
                match t.state {
                    State::Held { .. } => self.fill(&t.cat, now),
                    State::Waiting { .. } => self.settle(t.owner, t.corr),
                }
            }
            return Ok(());
        }
        if let State::Held { until } = &mut t.state {
            let ms = Duration::from_millis(ms.unsigned_abs()).min(MAX_HOLD);
            *until = now + ms;
            self.timers.add(*until, Timer::Ticket(handle));
        }
        Ok(())
    }

    /// Every stage holding or waiting for a ticket of `cat`, once each; `None`: no category.
    pub fn audience(&self, cat: &str) -> Option<BTreeSet<&Owner>> {
        let c = self.categories.get(cat)?;
        Some(
            c.held
                .iter()
                .chain(&c.waiting)
                .filter_map(|h| self.tickets.get(h).map(|t| &t.owner))
                .collect(),
        )
    }

    /// Runs what is due at `now`: expired holds are revoked, waiting requests past their
    /// deadline dropped, categories past their close time closed. Returns when next to run.
    pub fn tick(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::Ticket(h) => self.expire(h, now),
                Timer::Close(cat) => {
                    let due = self
                        .categories
                        .get(&cat)
                        .is_some_and(|c| !c.closed && c.close_at.is_some_and(|t| t <= now));
                    if due {
                        self.close(&cat);
                    }
                }
            }
        }
        // Extensions leave stale entries behind; a holder extending in a loop must not grow
        // the heap without bound.
        if self.timers.len() > 2 * (self.tickets.len() + self.categories.len()) + 64 {
            self.rebuild_timers();
        }
    }

    /// When [`Book::tick`] is next due.
    pub fn next_due(&self) -> Option<Instant> {
        self.timers.next()
    }

    fn expire(&mut self, handle: u64, now: Instant) {
        let due = match self.tickets.get(&handle).map(|t| &t.state) {
            Some(State::Held { until }) => *until <= now,
            Some(State::Waiting { until, .. }) => until.is_some_and(|t| t <= now),
            None => false,
        };
        if !due {
            return;
        }
        let Some(t) = self.remove(handle) else { return };
        // A request past its deadline has had its fail path run at the requester: no notice.
        if let State::Held { .. } = t.state {
            self.events.push(Event::Cancel {
                handle,
                owner: t.owner,
                cb: t.cb,
            });
            self.fill(&t.cat, now);
        }
    }

    /// Grants free tickets of `cat` to its waiting requests, in request order.
    fn fill(&mut self, cat: &str, now: Instant) {
        let Some(c) = self.categories.get_mut(cat) else {
            return;
        };
        while c.free() > 0 {
            let Some(handle) = c.waiting.pop_first() else {
                break;
            };
            let Some(t) = self.tickets.get_mut(&handle) else {
                continue;
            };
            let until = now + HOLD;
            let State::Waiting { values, .. } =
                std::mem::replace(&mut t.state, State::Held { until })
            else {
                continue;
            };
            self.waiting -= 1;
            c.held.insert(handle);
            self.timers.add(until, Timer::Ticket(handle));
            self.events.push(Event::Grant(Grant {
                handle,
                owner: t.owner.clone(),
                cb: t.cb.clone(),
                corr: t.corr,
                values,
            }));
        }
    }

    /// Closes `cat`: its waiting requests are cancelled; held tickets stay until released
    /// or expired.
    fn close(&mut self, cat: &str) {
        let Some(c) = self.categories.get_mut(cat) else {
            return;
        };
        c.closed = true;
        c.close_at = None;
        let waiting: Vec<u64> = c.waiting.iter().copied().collect();
        for handle in waiting {
            if let Some(t) = self.remove(handle) {
                self.events.push(Event::Cancel {
                    handle,
                    owner: t.owner.clone(),
                    cb: t.cb,
                });
                self.settle(t.owner, t.corr);
            }
        }
        if self.categories.get(cat).is_some_and(Category::spent) {
            self.categories.remove(cat);
        }
    }

    fn settle(&mut self, owner: Owner, corr: u64) {
        if corr != 0 {
            self.events.push(Event::Settle { owner, corr });
        }
    }

    /// Forgets ticket `handle`, and its category once closed and empty.
    fn remove(&mut self, handle: u64) -> Option<Ticket> {
        let t = self.tickets.remove(&handle)?;
        if let State::Waiting { .. } = t.state {
            self.waiting -= 1;
        }
        if let Some(c) = self.categories.get_mut(&t.cat) {
            c.held.remove(&handle);
            c.waiting.remove(&handle);
            if c.spent() {
                self.categories.remove(&t.cat);
            }
        }
        Some(t)
    }

    fn rebuild_timers(&mut self) {
        let tickets = self.tickets.iter().filter_map(|(h, t)| match t.state {
            State::Held { until } => Some((until, Timer::Ticket(*h))),
            State::Waiting { until, .. } => until.map(|at| (at, Timer::Ticket(*h))),
        });
        let closes = self
            .categories
            .iter()
            .filter_map(|(name, c)| c.close_at.map(|at| (at, Timer::Close(name.clone()))));
        let live: Vec<_> = tickets.chain(closes).collect();
        self.timers.rebuild(live);
    }
}

#[cfg(test)]
#[path = "book_tests.rs"]
mod tests;
