//! Heartbeats: both ends of a link ping each other, and a peer that has said nothing for a
//! whole window is *silent* — frozen (SIGSTOP), overloaded or cut off — until it speaks again
//! (DESIGN §8). Silence does not close the link: a frozen process that wakes up comes back
//! without re-registering.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::frame::Frame;
use crate::header::{Header, Kind};

/// Default silence after which a peer is taken out of service.
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(500);

/// Pings per window. A peer that missed three in a row is declared silent at the next check,
/// so it is out of service within the window however its last frame fell between pings.
const PINGS_PER_WINDOW: u32 = 5;
const MISSED: u32 = 3;

/// When a link last heard from its peer.
#[derive(Debug)]
pub struct Liveness {
    epoch: Instant,
    /// The last check that found a frame had arrived since the one before.
    last_heard_ms: AtomicU64,
    /// A frame arrived since the last check. `heard` runs for every frame on the hot path, so
    /// it only sets this flag; the check, a few times a window, reads the clock.
    fresh: AtomicBool,
    silent: AtomicBool,
    /// Pauses in progress (see [`Liveness::pause`]).
    paused: AtomicU32,
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            epoch: Instant::now(),
            last_heard_ms: AtomicU64::new(0),
            fresh: AtomicBool::new(false),
            silent: AtomicBool::new(false),
            paused: AtomicU32::new(0),
        }
    }
}

/// What a check or a frame changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The peer just went silent.
    Silent,
    /// The peer spoke again after being silent.
    Back,
}

impl Liveness {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Records that a frame arrived; `Some(Back)` if the peer had been silent.
    pub fn heard(&self) -> Option<Change> {
        if !self.fresh.load(Ordering::Relaxed) {
            self.fresh.store(true, Ordering::Relaxed);
        }
        (self.silent.load(Ordering::Relaxed) && self.silent.swap(false, Ordering::Relaxed))
            .then_some(Change::Back)
    }

    /// This end stops reading the link for a while (back-pressure: the peer is slowed down by
    /// TCP): until the guard drops, the peer's frames cannot be seen, so its quiet is not
    /// silence. Its silence is judged again once reading resumes.
    pub fn pause(&self) -> Pause<'_> {
        self.paused.fetch_add(1, Ordering::Relaxed);
        Pause(self)
    }

    /// Whether the peer is silent now.
    pub fn is_silent(&self) -> bool {
        self.silent.load(Ordering::Relaxed)
    }

    /// `Some(Silent)` when the peer has been quiet for `window` and was not silent before.
    pub fn check(&self, window: Duration) -> Option<Change> {
        let now = self.now_ms();
        // Frames count as heard at the check that finds them: a peer that stops is declared
        // silent at most one check interval (a fifth of the window) later than by its last
        // frame's own time, still within the window.
        if self.fresh.swap(false, Ordering::Relaxed) || self.paused.load(Ordering::Relaxed) > 0 {
            self.last_heard_ms.store(now, Ordering::Relaxed);
        }
        let quiet = now.saturating_sub(self.last_heard_ms.load(Ordering::Relaxed));
        if quiet < window.as_millis() as u64 {
            return None;
        }
        (!self.silent.swap(true, Ordering::Relaxed)).then_some(Change::Silent)
    }
}

/// A pause in reading a link ([`Liveness::pause`]); reading resumes when it drops.
pub struct Pause<'a>(&'a Liveness);

impl Drop for Pause<'_> {
    fn drop(&mut self) {
        self.0.paused.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A ping frame.
pub fn ping(seq: u64) -> Bytes {
    let mut h = Header::new(Kind::Ping);
    h.key = seq;
    Frame::new(h, &[]).raw
}

/// The answer to a ping with `seq`.
pub fn pong(seq: u64) -> Bytes {
    let mut h = Header::new(Kind::Pong);
    h.key = seq;
    Frame::new(h, &[]).raw
}

/// Pings through `send` and watches `liveness` until `send` returns false (the link is gone);
/// `changed` hears when the peer goes silent — at the latest `window` after it stopped.
pub async fn run(
    liveness: &Liveness,
    window: Duration,
    send: impl Fn(Bytes) -> bool,
    changed: impl Fn(Change),
) {
    let period = window / PINGS_PER_WINDOW;
    let quiet = period * MISSED;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    let mut last = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let now = tokio::time::Instant::now();
        // If this task itself was held up (a stalled process, a starved runtime), the peer's
        // frames may be waiting unread: do not blame the peer for our own pause this round.
        let stalled = now.duration_since(last) > period * 2;
        last = now;
        seq += 1;
        if !send(ping(seq)) {
            return;
        }
        if stalled {
            continue;
        }
        if let Some(c) = liveness.check(quiet) {
            changed(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_return() {
        let l = Liveness::default();
        l.heard();
        assert_eq!(l.check(Duration::from_secs(60)), None);
        assert_eq!(l.check(Duration::ZERO), Some(Change::Silent));
        assert_eq!(l.check(Duration::ZERO), None, "reported once");
        assert!(l.is_silent());
        assert_eq!(l.heard(), Some(Change::Back));
        assert!(!l.is_silent());
    }

    #[test]
    fn a_pause_in_reading_is_not_silence() {
        let l = Liveness::default();
        let pause = l.pause();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            l.check(Duration::from_millis(2)),
            None,
            "quiet while paused"
        );
        drop(pause);
        assert_eq!(l.check(Duration::ZERO), Some(Change::Silent));
    }
}
