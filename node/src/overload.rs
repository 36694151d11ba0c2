//! Overload detection (stage-spec §1.8, "the process leaves the platform network while
//! overloaded"): a stage whose backlog keeps growing for a whole window is reported to the
//! routers as overloaded, and round-robin passes it over until it has drained.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::node::Node;

/// A backlog at or below this is drained.
const DRAINED: usize = 1;

/// How often an overloaded stage is reported again (a router that linked meanwhile hears it).
const REPEAT: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    previous: usize,
    growing_since: Option<Instant>,
    overloaded: bool,
}

/// Watches every stage's backlog every fifth of `window` until the node stops.
pub fn spawn(node: Arc<Node>, window: Duration) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("overload".into()).spawn(move || {
        let mut states: HashMap<String, State> = HashMap::new();
        let mut repeated = Instant::now();
        while !node.stopping() {
            std::thread::sleep(window / 5);
            let repeat = repeated.elapsed() >= REPEAT;
            if repeat {
                repeated = Instant::now();
            }
            for (stage, backlog) in node.backlogs() {
                let s = states.entry(stage.clone()).or_default();
                if repeat && s.overloaded {
                    node.report_busy(&stage, true);
                }
                if let Some(busy) = step(s, backlog, window, Instant::now()) {
                    if busy {
                        log::warn!("stage {stage}: the backlog keeps growing ({backlog} waiting): overloaded, leaving round-robin until it drains");
                    } else {
                        log::info!("stage {stage}: drained; back in round-robin");
                    }
                    node.report_busy(&stage, busy);
                    if let Some(s) = node.stats(&stage) {
                        s.overloaded.store(busy, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }
    })
}

/// One observation; `Some(busy)` when the stage's state changes.
fn step(s: &mut State, backlog: usize, window: Duration, now: Instant) -> Option<bool> {
    let previous = std::mem::replace(&mut s.previous, backlog);
    if s.overloaded {
        if backlog <= DRAINED {
            s.overloaded = false;
            s.growing_since = None;
            return Some(false);
        }
        return None;
    }
    if backlog < previous || backlog <= DRAINED {
        s.growing_since = None;
    } else if backlog > previous {
        let since = *s.growing_since.get_or_insert(now);
        if now.duration_since(since) >= window {
            s.overloaded = true;
            return Some(true);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_for_a_window_overloads_and_draining_recovers() {
        let w = Duration::from_millis(300);
        let t = Instant::now();
        let mut s = State::default();
        assert_eq!(step(&mut s, 10, w, t), None);
        assert_eq!(step(&mut s, 20, w, t + Duration::from_millis(100)), None);
        assert_eq!(
            step(&mut s, 15, w, t + Duration::from_millis(200)),
            None,
            "shrinking restarts the window"
        );
        assert_eq!(step(&mut s, 30, w, t + Duration::from_millis(300)), None);
        assert_eq!(
            step(&mut s, 40, w, t + Duration::from_millis(650)),
            Some(true)
        );
        assert_eq!(step(&mut s, 50, w, t + Duration::from_millis(700)), None);
        assert_eq!(
            step(&mut s, 1, w, t + Duration::from_millis(800)),
            Some(false)
        );
    }
}
