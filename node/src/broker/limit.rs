//! Input rate limits of one connection (seed 002 "입력 처리": excessive input is held back).
//!
//! `socket.limit = {messages = M, bytes = B}` allows M messages and B bytes per second, with
//! a burst of one second's worth. A stream that goes over is not cut off: its messages wait and
//! its reader stops until they may go on, so TCP's own flow control slows the client down and
//! nothing is lost. A datagram socket cannot push back, so datagrams over the limit are dropped.

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

    /// Takes one message of `bytes` if the allowance has room for it. A message may overdraw
    /// the byte allowance (so that one larger than a second's worth still passes); the debt
    /// holds back the next ones.
    pub fn take(&mut self, bytes: usize, now: Instant) -> bool {
        if self.limit.is_unlimited() {
            return true;
        }
        self.refill(now);
        let ok = (self.limit.messages == 0 || self.messages >= 1.0)
            && (self.limit.bytes == 0 || self.bytes > 0.0);
        if ok {
            self.messages -= 1.0;
            self.bytes -= bytes as f64;
        }
        ok
    }

    /// When the next message may be taken: `None` = now.
    pub fn resume_at(&mut self, now: Instant) -> Option<Instant> {
        if self.limit.is_unlimited() {
            return None;
        }
        self.refill(now);
        let m = if self.limit.messages == 0 || self.messages >= 1.0 {
            0.0
        } else {
            (1.0 - self.messages) / self.limit.messages as f64
        };
        let b = if self.limit.bytes == 0 || self.bytes > 0.0 {
            0.0
        } else {
            // Just past zero, so that the allowance is positive when we wake.
            (1.0 - self.bytes) / self.limit.bytes as f64
        };
        let secs = m.max(b);
        (secs > 0.0).then(|| now + Duration::from_secs_f64(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_over_the_rate_wait_their_turn() {
        let t = Instant::now();
        let mut m = Meter::new(
            Limit {
                messages: 10,
                bytes: 0,
            },
            t,
        );
        for _ in 0..10 {
            assert!(m.take(100, t), "the burst is allowed");
        }
        assert!(!m.take(100, t));
        let at = m.resume_at(t).expect("spent");
        assert_eq!(at - t, Duration::from_millis(100));
        assert!(m.take(100, at));
    }

    #[test]
    fn the_byte_rate_is_kept_on_average() {
        let t = Instant::now();
        let mut m = Meter::new(
            Limit {
                messages: 0,
                bytes: 1000,
            },
            t,
        );
        assert!(m.take(600, t));
        assert!(m.take(600, t), "one message may overdraw");
        assert!(!m.take(1, t), "the debt holds the next back");
        assert!(m.take(600, t + Duration::from_millis(300)));
    }

    #[test]
    fn no_limit_never_waits() {
        let t = Instant::now();
        let mut m = Meter::new(Limit::default(), t);
        assert!(m.take(1 << 30, t));
        assert_eq!(m.resume_at(t), None);
    }
}
