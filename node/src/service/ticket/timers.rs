//! When tickets expire, waiting requests pass their deadline and categories close: a heap of
//! due times. An entry is not removed when its ticket is released or extended; it is checked
//! against the ticket's current state when it comes due.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// What comes due.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// A held ticket's hold, or a waiting request's deadline.
    Ticket(u64),
    /// A category's close time.
    Close(String),
}

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Timer)>>,
}

impl Timers {
    pub fn add(&mut self, at: Instant, timer: Timer) {
        self.heap.push(Reverse((at, timer)));
    }

    /// The next entry due at `now`, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse((_, t))| t),
            _ => None,
        }
    }

    /// When the next entry is due.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Replaces every entry (dropping the stale ones extensions left behind).
    pub fn rebuild(&mut self, live: impl IntoIterator<Item = (Instant, Timer)>) {
        self.heap = live.into_iter().map(Reverse).collect();
    }
}
