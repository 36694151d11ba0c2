//! `stage.once(key, f)`: run `f` once per process (stage-spec §6.1).
//!
//! The last argument decides: a function runs now, synchronously, unless `key` already ran in
//! this process (any stage, any thread); `nil` forgets `key` so it may run again.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use mlua::{Lua, MultiValue, Value};

fn done() -> &'static Mutex<HashSet<String>> {
    static DONE: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    DONE.get_or_init(Default::default)
}

/// `stage.once(key, f)` / `stage.once(key, nil)`.
pub fn once(_: &Lua, args: MultiValue) -> mlua::Result<()> {
    // stage-spec §6.1: a key that is not a string is the key "".
    let key = match args.front() {
        Some(Value::String(s)) => s.to_string_lossy(),
        _ => String::new(),
    };
    match args.back() {
        Some(Value::Function(f)) => {
            // Record before running, so a recursive once(key) inside f does not run again.
            let first = done().lock().unwrap_or_else(|p| p.into_inner()).insert(key);
            if first {
                f.call::<()>(())?;
            }
            Ok(())
        }
        _ => {
            done()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            Ok(())
        }
    }
}
