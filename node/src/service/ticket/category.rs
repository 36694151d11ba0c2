//! A ticket category: how many tickets it has, who holds them, who waits (stage-spec §9.2).

use std::collections::BTreeSet;
use std::time::Instant;

/// One category. Handles grow with request order, so the waiting set in handle order is the
/// queue in request order.
#[derive(Debug)]
pub struct Category {
    /// Tickets that may be held at once is `|limit|`; a negative limit keeps no waiting queue.
    limit: i64,
    /// When it closes (from `stage.signal("ticket:@cat", limit, close_ms)`).
    pub close_at: Option<Instant>,
    /// Closed: no new requests; the tickets held stay until released or expired, and the
    /// category goes away with the last of them.
    pub closed: bool,
    pub held: BTreeSet<u64>,
    pub waiting: BTreeSet<u64>,
}

impl Category {
    pub fn new(limit: i64, close_at: Option<Instant>) -> Category {
        Category {
            limit,
            close_at,
            closed: limit == 0,
            held: BTreeSet::new(),
            waiting: BTreeSet::new(),
        }
    }

    /// A new limit and close time: a category shrunk below what is held frees no tickets
    /// until enough are released; a closed one opens again (unless the limit is 0).
    pub fn resize(&mut self, limit: i64, close_at: Option<Instant>) {
        self.limit = limit;
        self.close_at = close_at;
        self.closed = limit == 0;
    }

    /// Tickets free now.
    pub fn free(&self) -> u64 {
        if self.closed {
            return 0;
        }
        self.limit
            .unsigned_abs()
            .saturating_sub(self.held.len() as u64)
    }

    /// Whether requests may wait for a ticket.
    pub fn queues(&self) -> bool {
        self.limit > 0
    }

    /// Closed and nothing held: nothing left to keep it for.
    pub fn spent(&self) -> bool {
        self.closed && self.held.is_empty() && self.waiting.is_empty()
    }
}
