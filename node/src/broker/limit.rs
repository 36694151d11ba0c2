//! Input rate limits of one connection (seed 002 "입력 처리": excessive input is held back).
//!
//! `socket.limit = {messages = M, bytes = B}` allows M messages and B bytes per second, with
//! a burst of one second's worth. A stream that goes over is not cut off: its reader stops until
//! the debt is paid, so TCP's own flow control slows the client down and nothing is lost. A
//! datagram socket cannot push back, so datagrams over the limit are dropped.

use std::time::{Duration, Instant};

/// Per-second limits; 0 = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit {
    pub messages: u64,
    pub bytes: u64,
}

impl Limit {
    pub fn is_unlimited(&self) -> bool {
        self.messages == 0 && self.bytes == 0
    }
}

/// Token buckets for one connection.
#[derive(Debug)]
pub struct Meter {
    limit: Limit,
    /// Allowance left (negative: debt), in messages and bytes.
    messages: f64,
    bytes: f64,
    at: Instant,
}

impl Meter {
    pub fn new(limit: Limit, now: Instant) -> Meter {
        Meter {
            limit,
            messages: limit.messages as f64,
            bytes: limit.bytes as f64,
            at: now,
        }
    }

    /// Applies a changed limit (a script set `socket.limit`), starting with a full burst.
    pub fn set(&mut self, limit: Limit, now: Instant) {
        if limit != self.limit {
            *self = Meter::new(limit, now);
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        let m = self.limit.messages as f64;
        let b = self.limit.bytes as f64;
        self.messages = (self.messages + dt * m).min(m);
        self.bytes = (self.bytes + dt * b).min(b);
    }

    /// Counts input that was read (a stream: it is already in, it may go into debt).
    pub fn spend(&mut self, messages: usize, bytes: usize, now: Instant) {
        if self.limit.is_unlimited() {
            return;
        }
        self.refill(now);
        self.messages -= messages as f64;
        self.bytes -= bytes as f64;
    }

    /// Takes one datagram's allowance if there is enough; false = drop it.
    pub fn admit(&mut self, bytes: usize, now: Instant) -> bool {
        if self.limit.is_unlimited() {
            return true;
        }
        self.refill(now);
        let ok = (self.limit.messages == 0 || self.messages >= 1.0)
            && (self.limit.bytes == 0 || self.bytes >= bytes as f64);
        if ok {
            self.messages -= 1.0;
            self.bytes -= bytes as f64;
        }
        ok
    }

    /// When reading may go on: `None` = now, else the moment the debt is paid.
    pub fn resume_at(&mut self, now: Instant) -> Option<Instant> {
        if self.limit.is_unlimited() {
            return None;
        }
        self.refill(now);
        let wait = |left: f64, rate: u64| {
            if rate == 0 || left >= 0.0 {
                0.0
            } else {
                -left / rate as f64
            }
        };
        let secs = wait(self.messages, self.limit.messages).max(wait(self.bytes, self.limit.bytes));
        (secs > 0.0).then(|| now + Duration::from_secs_f64(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_over_its_limit_waits_for_the_debt() {
        let t = Instant::now();
        let mut m = Meter::new(
            Limit {
                messages: 10,
                bytes: 0,
            },
            t,
        );
        m.spend(10, 100, t);
        assert_eq!(m.resume_at(t), None, "the burst is allowed");
        m.spend(5, 50, t);
        let at = m.resume_at(t).expect("in debt");
        assert_eq!(at - t, Duration::from_millis(500));
        assert_eq!(m.resume_at(t + Duration::from_millis(500)), None);
    }

    #[test]
    fn datagrams_over_the_byte_limit_are_refused() {
        let t = Instant::now();
        let mut m = Meter::new(
            Limit {
                messages: 0,
                bytes: 1000,
            },
            t,
        );
        assert!(m.admit(600, t));
        assert!(!m.admit(600, t));
        assert!(m.admit(600, t + Duration::from_millis(300)));
    }

    #[test]
    fn no_limit_never_waits() {
        let t = Instant::now();
        let mut m = Meter::new(Limit::default(), t);
        m.spend(1_000_000, 1 << 30, t);
        assert_eq!(m.resume_at(t), None);
        assert!(m.admit(1 << 20, t));
    }
}
