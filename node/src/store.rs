//! The process-wide store behind `*NAME` globals, `__` and `stage.v` (stage-spec §5.4, §5.6).
//!
//! Values are kept serialised (BSON, see [`crate::value`]), so every VM of the process — each on
//! its own thread — reads its own fresh copy. `update` holds the entry's lock while the caller's
//! function computes the new value: the read-modify-write of `__(name, fn)` is atomic across
//! threads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

/// One stored value and the lock of its atomic updates.
#[derive(Default)]
struct Entry {
    value: Mutex<Option<Arc<[u8]>>>,
    /// Held during `update`; the owner is recorded to refuse re-entry from the same thread
    /// (which would deadlock).
    updating: Mutex<()>,
    owner: Mutex<Option<ThreadId>>,
}

/// A `*NAME` rule of `_SANDBOX[""]`.
#[derive(Debug, Clone, Copy)]
struct Rule {
    readonly: bool,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Arc<Entry>>,
    rules: HashMap<String, Rule>,
}

/// The store of one process.
#[derive(Default)]
pub struct Store {
    inner: Mutex<Inner>,
}

impl Store {
    fn entry(&self, name: &str) -> Arc<Entry> {
        let mut inner = self.inner.lock().expect("store lock");
        inner.entries.entry(name.to_owned()).or_default().clone()
    }

    fn existing(&self, name: &str) -> Option<Arc<Entry>> {
        self.inner
            .lock()
            .expect("store lock")
            .entries
            .get(name)
            .cloned()
    }

    /// The serialised value of `name`, if any.
    pub fn get(&self, name: &str) -> Option<Arc<[u8]>> {
        self.existing(name)?
            .value
            .lock()
            .expect("entry lock")
            .clone()
    }

    /// Stores (or with `None` deletes) a serialised value.
    pub fn set(&self, name: &str, value: Option<Arc<[u8]>>) {
        if value.is_none() && self.existing(name).is_none() {
            return;
        }
        *self.entry(name).value.lock().expect("entry lock") = value;
    }

    /// Runs `f(old)` with the entry locked against other updates and stores its result.
    pub fn update<E>(
        &self,
        name: &str,
        f: impl FnOnce(Option<Arc<[u8]>>) -> Result<Option<Arc<[u8]>>, E>,
        reentered: impl FnOnce() -> E,
    ) -> Result<Option<Arc<[u8]>>, E> {
        let entry = self.entry(name);
        let me = std::thread::current().id();
        if *entry.owner.lock().expect("owner lock") == Some(me) {
            return Err(reentered());
        }
        let _held = entry.updating.lock().expect("update lock");
        *entry.owner.lock().expect("owner lock") = Some(me);
        let old = entry.value.lock().expect("entry lock").clone();
        let result = f(old);
        if let Ok(new) = &result {
            *entry.value.lock().expect("entry lock") = new.clone();
        }
        *entry.owner.lock().expect("owner lock") = None;
        result
    }

    /// Names with a value, sorted, optionally only those starting with `prefix`.
    pub fn names(&self, prefix: &str) -> Vec<String> {
        let inner = self.inner.lock().expect("store lock");
        let mut names: Vec<String> = inner
            .entries
            .iter()
            .filter(|(n, e)| n.starts_with(prefix) && e.value.lock().expect("entry lock").is_some())
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    /// Deletes every name starting with `prefix` (a `__[n]` namespace).
    pub fn clear(&self, prefix: &str) {
        let inner = self.inner.lock().expect("store lock");
        for (n, e) in &inner.entries {
            if n.starts_with(prefix) {
                *e.value.lock().expect("entry lock") = None;
            }
        }
    }

    /// Declares `*NAME`: a global shared by the whole process. Returns false if the name was
    /// already declared (its rule and value are then left as they are).
    pub fn share(&self, name: &str, readonly: bool) -> bool {
        let mut inner = self.inner.lock().expect("store lock");
        if inner.rules.contains_key(name) {
            return false;
        }
        inner.rules.insert(name.to_owned(), Rule { readonly });
        true
    }

    /// Whether `name` is a process-wide global, and whether it is read only.
    pub fn rule(&self, name: &str) -> Option<bool> {
        self.inner
            .lock()
            .expect("store lock")
            .rules
            .get(name)
            .map(|r| r.readonly)
    }

    /// Every declared process-wide global, sorted.
    pub fn shared_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .lock()
            .expect("store lock")
            .rules
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_is_atomic_across_threads() {
        let store = Arc::new(Store::default());
        store.set("n", Some(Arc::from(&0u64.to_le_bytes()[..])));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        store
                            .update(
                                "n",
                                |old| {
                                    let mut b = [0u8; 8];
                                    b.copy_from_slice(&old.unwrap());
                                    let n = u64::from_le_bytes(b) + 1;
                                    Ok::<_, ()>(Some(Arc::from(&n.to_le_bytes()[..])))
                                },
                                || (),
                            )
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&store.get("n").unwrap());
        assert_eq!(u64::from_le_bytes(b), 4000);
    }

    #[test]
    fn reentrant_update_is_refused() {
        let store = Store::default();
        let r = store.update(
            "x",
            |_| store.update("x", |_| Ok(None), || "again").map(|_| None),
            || "outer",
        );
        assert_eq!(r.err(), Some("again"));
    }
}
