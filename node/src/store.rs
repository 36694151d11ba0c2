//! The process-wide store behind `*NAME` globals, `__` and `stage.v` (stage-spec §5.4, §5.6).
//!
//! Values are kept serialised (BSON, see [`crate::value`]), so every VM of the process — each on
//! its own thread — reads its own fresh copy. `update` is optimistic: the caller's function
//! computes the new value from a snapshot with no lock held, and the result is stored only if
//! nobody stored in between — otherwise the function runs again on the newer value. So the
//! read-modify-write of `__(name, fn)` is atomic, and a slow or blocked function holds up no
//! other thread (it may run more than once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One stored value and its version (bumped by every store).
#[derive(Default)]
struct Entry {
    value: Mutex<(u64, Option<Arc<[u8]>>)>,
}

impl Entry {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Option<Arc<[u8]>>)> {
        self.value.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How often `update` retries when other threads keep storing first.
const MAX_RETRIES: usize = 1000;

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
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry(&self, name: &str) -> Arc<Entry> {
        self.inner()
            .entries
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    fn existing(&self, name: &str) -> Option<Arc<Entry>> {
        self.inner().entries.get(name).cloned()
    }

    /// The serialised value of `name`, if any.
    pub fn get(&self, name: &str) -> Option<Arc<[u8]>> {
        self.existing(name)?.lock().1.clone()
    }

    /// Stores (or with `None` deletes) a serialised value.
    pub fn set(&self, name: &str, value: Option<Arc<[u8]>>) {
        if value.is_none() && self.existing(name).is_none() {
            return;
        }
        let entry = self.entry(name);
        let mut v = entry.lock();
        v.0 += 1;
        v.1 = value;
    }

    /// Stores `f(old)` unless another store came first, in which case `f` runs again on the
    /// newer value; `busy()` is the error when that keeps happening.
    pub fn update<E>(
        &self,
        name: &str,
        mut f: impl FnMut(Option<Arc<[u8]>>) -> Result<Option<Arc<[u8]>>, E>,
        busy: impl FnOnce() -> E,
    ) -> Result<Option<Arc<[u8]>>, E> {
        let entry = self.entry(name);
        for _ in 0..MAX_RETRIES {
            let (version, old) = entry.lock().clone();
            let new = f(old)?;
            let mut v = entry.lock();
            if v.0 == version {
                v.0 += 1;
                v.1 = new.clone();
                return Ok(new);
            }
        }
        Err(busy())
    }

    /// Names with a value, sorted, optionally only those starting with `prefix`.
    pub fn names(&self, prefix: &str) -> Vec<String> {
        let inner = self.inner();
        let mut names: Vec<String> = inner
            .entries
            .iter()
            .filter(|(n, e)| n.starts_with(prefix) && e.lock().1.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    /// Deletes every name starting with `prefix` (a `__[n]` namespace).
    pub fn clear(&self, prefix: &str) {
        let inner = self.inner();
        for (n, e) in &inner.entries {
            if n.starts_with(prefix) {
                let mut v = e.lock();
                v.0 += 1;
                v.1 = None;
            }
        }
    }

    /// Declares `*NAME`: a global shared by the whole process. Returns false if the name was
    /// already declared (its rule and value are then left as they are).
    pub fn share(&self, name: &str, readonly: bool) -> bool {
        let mut inner = self.inner();
        if inner.rules.contains_key(name) {
            return false;
        }
        inner.rules.insert(name.to_owned(), Rule { readonly });
        true
    }

    /// Whether `name` is a process-wide global, and whether it is read only.
    pub fn rule(&self, name: &str) -> Option<bool> {
        self.inner().rules.get(name).map(|r| r.readonly)
    }

    /// Every declared process-wide global, sorted.
    pub fn shared_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner().rules.keys().cloned().collect();
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
    fn an_update_reruns_when_another_store_came_first() {
        let store = Store::default();
        let mut runs = 0;
        let r = store.update(
            "x",
            |old| {
                runs += 1;
                if runs == 1 {
                    // Another writer stores while this function computes.
                    store.set("x", Some(Arc::from(&b"other"[..])));
                }
                Ok::<_, ()>(Some(Arc::from(old.as_deref().unwrap_or(b"none"))))
            },
            || (),
        );
        assert_eq!(runs, 2);
        assert_eq!(r.unwrap().as_deref(), Some(&b"other"[..]));
    }
}
