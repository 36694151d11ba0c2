//! What each stage reports for `/metrics` and `/status` beyond its inbox's backlog: the Lua
//! memory of its VM, how often its main script was reloaded, how many Lua errors it logged,
//! and whether it is overloaded. Written by the stage's own thread (and the overload watcher),
//! read by the HTTP endpoint; relaxed atomics, nothing on the message path but a store.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct StageStats {
    /// Messages the stage sent to stages by name: through a router (on a standalone node,
    /// to its own stages), answers that leave the node included.
    pub sent: AtomicU64,
    /// Bytes the stage's Lua VM holds (0 for a built-in service).
    pub lua_memory: AtomicUsize,
    /// Times the main script was run again after its file changed.
    pub reloads: AtomicU64,
    /// Lua errors logged by the stage's main script, callbacks, timers and jobs.
    pub errors: AtomicU64,
    /// Reported to the routers as overloaded (the backlog kept growing).
    pub overloaded: AtomicBool,
}

impl StageStats {
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}
