//! A value read on every message and changed rarely, shared copy-on-write: a reader keeps its
//! own `Arc` of the current version and, per message, only compares a version number — no
//! lock and no shared write on the hot path. A writer clones the value, changes the clone and
//! publishes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The current version of a `T`.
#[derive(Debug, Default)]
pub struct Snapshot<T> {
    current: Mutex<Arc<T>>,
    version: AtomicU64,
}

impl<T: Clone> Snapshot<T> {
    pub fn new(value: T) -> Snapshot<T> {
        Snapshot {
            current: Mutex::new(Arc::new(value)),
            version: AtomicU64::new(0),
        }
    }

    /// The current version.
    pub fn load(&self) -> Arc<T> {
        self.current.lock().expect("snapshot lock").clone()
    }

    /// Changes a copy of the current version with `f` and publishes it. Writers are serialised;
    /// readers see the old version until they next look.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut current = self.current.lock().expect("snapshot lock");
        let mut next = T::clone(&current);
        let result = f(&mut next);
        *current = Arc::new(next);
        self.version.fetch_add(1, Ordering::Release);
        result
    }
}

/// A reader's copy, refreshed when the version changed.
#[derive(Debug)]
pub struct Cached<T> {
    value: Arc<T>,
    version: u64,
}

impl<T: Clone> Cached<T> {
    pub fn new(from: &Snapshot<T>) -> Cached<T> {
        let version = from.version.load(Ordering::Acquire);
        Cached {
            value: from.load(),
            version,
        }
    }

    /// The current version of `from`.
    pub fn get(&mut self, from: &Snapshot<T>) -> &T {
        let version = from.version.load(Ordering::Acquire);
        if version != self.version {
            // Read the version first: a change racing with this load is seen next time.
            self.value = from.load();
            self.version = version;
        }
        &self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_updates_at_their_next_look() {
        let shared = Snapshot::new(vec![1]);
        let mut reader = Cached::new(&shared);
        let held = shared.load();
        assert_eq!(reader.get(&shared), &vec![1]);
        shared.update(|v| v.push(2));
        assert_eq!(reader.get(&shared), &vec![1, 2]);
        // A version taken before the update is unchanged.
        assert_eq!(*held, vec![1]);
    }
}
