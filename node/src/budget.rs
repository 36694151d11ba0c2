//! The instruction budget of one callback: a runaway script (`while true do end`) is interrupted
//! with an error instead of holding its thread forever (DESIGN §5 Errors).
//!
//! A hook runs every [`STEP`] VM instructions and adds them to the running callback's count;
//! past the limit it raises an error. Catching it does not help: the sandbox's `pcall`,
//! `xpcall` and `coroutine.resume` raise it again while the budget is spent, synchronous
//! callbacks share their caller's budget, scripts cannot reach `debug.sethook`, and `__gc`
//! finalizers (which Lua runs with hooks off) are refused. What stays out of reach is a single
//! long C call, e.g. a pathological `string.find` pattern.

use std::cell::Cell;

use mlua::{HookTriggers, Lua, VmState};

/// Instructions between two checks: rare enough to cost nothing measurable.
const STEP: u32 = 100_000;

/// Default budget: about a second of CPU for plain Lua code on this class of machine.
pub const DEFAULT_INSTRUCTIONS: u64 = 200_000_000;

thread_local! {
    /// Callbacks in progress on this thread's VM (one VM per thread; synchronous signals nest
    /// them).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

struct Budget {
    limit: u64,
    used: Cell<u64>,
}

impl Budget {
    fn exhausted(&self) -> bool {
        self.limit != 0 && self.used.get() > self.limit
    }
}

/// Installs the hook on `lua` with `limit` instructions per callback (0: no limit).
pub fn install(lua: &Lua, limit: u64) -> mlua::Result<()> {
    lua.set_app_data(Budget {
        limit,
        used: Cell::new(0),
    });
    if limit == 0 {
        return Ok(());
    }
    // The global hook, unlike a per-thread one, is inherited by coroutines the script creates.
    lua.set_global_hook(HookTriggers::new().every_nth_instruction(STEP), |lua, _| {
        let Some(b) = lua.app_data_ref::<Budget>() else {
            return Ok(VmState::Continue);
        };
        b.used.set(b.used.get() + STEP as u64);
        if b.exhausted() {
            return Err(interrupted(b.limit));
        }
        Ok(VmState::Continue)
    })
}

fn interrupted(limit: u64) -> mlua::Error {
    mlua::Error::runtime(format!(
        "callback interrupted: it ran more than {limit} VM instructions (--instruction-budget)"
    ))
}

/// Whether the running callback has used up its budget: `pcall`, `xpcall` and
/// `coroutine.resume` then raise the interruption again, whatever their handlers did with it.
pub fn exhausted(lua: &Lua) -> bool {
    lua.app_data_ref::<Budget>().is_some_and(|b| b.exhausted())
}

/// The interruption error, for the sandbox's wrappers to raise again.
pub fn interruption(lua: &Lua) -> mlua::Error {
    interrupted(lua.app_data_ref::<Budget>().map_or(0, |b| b.limit))
}

/// Whether a callback is running on this VM.
pub fn in_callback() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

/// A callback in progress: entered on creation, left when dropped (also while unwinding).
pub struct Callback<'a>(&'a Lua);

impl<'a> Callback<'a> {
    pub fn enter(lua: &'a Lua) -> Callback<'a> {
        enter(lua);
        Callback(lua)
    }
}

impl Drop for Callback<'_> {
    fn drop(&mut self) {
        leave(self.0);
    }
}

/// Enters a callback. The outermost one starts a fresh budget; a nested (synchronous) one
/// spends its caller's, so nesting cannot multiply the budget.
fn enter(lua: &Lua) {
    let outermost = DEPTH.with(|d| {
        d.set(d.get() + 1);
        d.get() == 1
    });
    if let Some(b) = lua.app_data_ref::<Budget>() {
        if outermost {
            b.used.set(0);
        }
    }
}

/// Leaves a callback; after the outermost one, code outside callbacks (decoding, reloads)
/// starts from zero again.
fn leave(lua: &Lua) {
    let outermost = DEPTH.with(|d| {
        d.set(d.get().saturating_sub(1));
        d.get() == 0
    });
    if !outermost {
        return;
    }
    if let Some(b) = lua.app_data_ref::<Budget>() {
        b.used.set(0);
    }
    // What the callback opened starts now that its settings are in place.
    crate::broker::start_deferred();
}
