//! Socket callbacks as values every worker can run.
//!
//! A callback is set in one VM and runs on whichever worker takes the socket's turn, so it is
//! kept the way functions cross VMs (bytecode with copies of its upvalues, `value::function`).
//! Identical callbacks — the same code with the same upvalues, e.g. the function an accept
//! callback returns for every connection — are interned to one [`Handler`], so each worker
//! loads it once and reuses it ([`Cache`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::Bytes;
use mlua::{Function, Lua, Value};

/// Worker-side cache size past which it starts over (handlers of closed sockets go with it).
const CACHE_LIMIT: usize = 512;

/// A callback: its encoded form (`value::encode_value` of the function) and a process-unique id.
pub struct Handler {
    pub id: u64,
    pub body: Bytes,
}

#[derive(Default)]
struct Interned {
    next: u64,
    by_body: HashMap<Bytes, Weak<Handler>>,
}

fn interned() -> &'static Mutex<Interned> {
    static INTERNED: OnceLock<Mutex<Interned>> = OnceLock::new();
    INTERNED.get_or_init(Default::default)
}

impl Handler {
    /// Encodes `f` (in the calling VM) as a handler.
    pub fn new(f: &Function) -> mlua::Result<Arc<Handler>> {
        let mut buf = Vec::new();
        crate::value::encode_value(&mut buf, &Value::Function(f.clone()))?;
        Ok(Self::intern(Bytes::from(buf)))
    }

    fn intern(body: Bytes) -> Arc<Handler> {
        let mut i = interned().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = i.by_body.get(&body).and_then(Weak::upgrade) {
            return h;
        }
        // Forget handlers nobody holds any more before the map doubles.
        if i.by_body.len() >= 64 && i.by_body.len().is_power_of_two() {
            i.by_body.retain(|_, w| w.strong_count() > 0);
        }
        i.next += 1;
        let h = Arc::new(Handler { id: i.next, body });
        i.by_body.insert(h.body.clone(), Arc::downgrade(&h));
        h
    }

    /// The callback as a function of `lua` (loaded once per VM).
    pub fn function(&self, lua: &Lua) -> mlua::Result<Function> {
        if let Some(f) = lua
            .app_data_ref::<Cache>()
            .and_then(|c| c.0.get(&self.id).cloned())
        {
            return Ok(f);
        }
        let f = match crate::value::decode_value(lua, &self.body)? {
            Value::Function(f) => f,
            other => {
                return Err(mlua::Error::runtime(format!(
                    "socket callback is a {}",
                    other.type_name()
                )))
            }
        };
        let mut cache = lua.app_data_mut::<Cache>();
        match cache.as_mut() {
            Some(c) => {
                if c.0.len() >= CACHE_LIMIT {
                    c.0.clear();
                }
                c.0.insert(self.id, f.clone());
            }
            None => {
                drop(cache);
                lua.set_app_data(Cache(HashMap::from([(self.id, f.clone())])));
            }
        }
        Ok(f)
    }
}

/// Handlers loaded in one VM, by id.
struct Cache(HashMap<u64, Function>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_callbacks_share_one_handler() {
        let a = Handler::intern(Bytes::from_static(b"same"));
        let b = Handler::intern(Bytes::from_static(b"same"));
        let c = Handler::intern(Bytes::from_static(b"other"));
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        drop((a, b));
        // Once nobody holds it, the same body may get a new id; it must not reuse c's.
        let d = Handler::intern(Bytes::from_static(b"same"));
        assert_ne!(d.id, c.id);
    }
}
