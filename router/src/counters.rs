//! What the router counts for `/metrics`, kept off the hot path's shared cache lines: each
//! session tallies a read's messages locally and adds them to the shared counters once per read.

use std::sync::atomic::{AtomicU64, Ordering};

/// One link's counters.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Messages received from the node.
    pub messages_in: AtomicU64,
    /// Messages queued for the node (forwarded to it).
    pub messages_out: AtomicU64,
    /// NACKs sent to the node (its messages that found no taker).
    pub nacks: AtomicU64,
    /// Overload signals sent to the node.
    pub overloads: AtomicU64,
}

/// Messages addressed to each class, router-wide.
#[derive(Debug)]
pub struct ClassCounters(Vec<AtomicU64>);

impl Default for ClassCounters {
    fn default() -> Self {
        ClassCounters((0..256).map(|_| AtomicU64::new(0)).collect())
    }
}

impl ClassCounters {
    pub fn get(&self, class: u8) -> u64 {
        self.0[class as usize].load(Ordering::Relaxed)
    }
}

/// A session's count of one read's messages per target class.
pub struct ClassTally {
    counts: Vec<u64>,
    touched: Vec<u8>,
}

impl Default for ClassTally {
    fn default() -> Self {
        ClassTally {
            counts: vec![0; 256],
            touched: Vec::new(),
        }
    }
}

impl ClassTally {
    pub fn count(&mut self, class: u8) {
        let c = &mut self.counts[class as usize];
        if *c == 0 {
            self.touched.push(class);
        }
        *c += 1;
    }

    /// Adds what was counted to `to` and starts again.
    pub fn publish(&mut self, to: &ClassCounters) {
        for class in self.touched.drain(..) {
            let c = &mut self.counts[class as usize];
            to.0[class as usize].fetch_add(*c, Ordering::Relaxed);
            *c = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_adds_once_per_class() {
        let shared = ClassCounters::default();
        let mut t = ClassTally::default();
        for class in [3, 3, 7, 3] {
            t.count(class);
        }
        t.publish(&shared);
        t.count(7);
        t.publish(&shared);
        assert_eq!((shared.get(3), shared.get(7), shared.get(1)), (3, 2, 0));
    }
}
