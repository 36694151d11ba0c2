//! The instruction budget of one callback: a runaway script (`while true do end`) is interrupted
//! with an error instead of holding its thread forever (DESIGN §5 Errors).
//!
//! A hook runs every [`STEP`] VM instructions and adds them to the running callback's count;
//! past the limit it raises an error. The count is not reset when the script catches that error
//! with `pcall`, so a loop around `pcall` is interrupted too at the next step.

use std::cell::Cell;

use mlua::{HookTriggers, Lua, VmState};

/// Instructions between two checks: rare enough to cost nothing measurable.
const STEP: u32 = 100_000;

/// Default budget: about a second of CPU for plain Lua code on this class of machine.
pub const DEFAULT_INSTRUCTIONS: u64 = 200_000_000;

struct Budget {
    limit: u64,
    used: Cell<u64>,
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
        let used = b.used.get() + STEP as u64;
        b.used.set(used);
        if used > b.limit {
            return Err(mlua::Error::runtime(format!(
                "callback interrupted: it ran more than {} VM instructions (--instruction-budget)",
                b.limit
            )));
        }
        Ok(VmState::Continue)
    })
}

/// Starts a callback's budget; returns the outer callback's count to restore.
pub fn enter(lua: &Lua) -> u64 {
    lua.app_data_ref::<Budget>()
        .map_or(0, |b| b.used.replace(0))
}

/// Ends a callback's budget. A nested (synchronous) callback's instructions count for its
/// caller too.
pub fn leave(lua: &Lua, outer: u64) {
    if let Some(b) = lua.app_data_ref::<Budget>() {
        b.used.set(outer + b.used.get());
    }
}
