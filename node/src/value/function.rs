//! Functions as values: Lua bytecode with the function's upvalues (DESIGN §5 "functions move as
//! bytecode with their serialisable upvalues").
//!
//! A function is written as BSON binary subtype 0x73 (the original's subtype for functions):
//!
//! ```text
//! code_len u32 LE | bytecode (string.dump) | upvalues: type u8 + BSON table value
//! ```
//!
//! The upvalues table comes from the VM's `pack` helper (`lua/sandbox.lua`): `_ENV` becomes a
//! marker rebound to the receiving VM's sandbox, a reference to the function itself (a recursive
//! local function) a marker for the new function, and values that cannot cross (userdata,
//! coroutines) nil; everything else — tables, strings, other functions — is encoded as any value
//! is. Packing needs a VM on this thread ([`install`]); without one a function cannot be sent.

use std::cell::RefCell;

use mlua::{Function, Lua, LuaString, Table, Value};

use super::{lua_error, malformed, read_value, write_table, Fail, Reader, ValueError};

/// BSON binary subtype of a function.
pub const SUBTYPE: u8 = 0x73;

struct Codec {
    pack: Function,
    unpack: Function,
}

thread_local! {
    static CODEC: RefCell<Option<Codec>> = const { RefCell::new(None) };
    /// Whether the payload being decoded may carry functions (see [`accepting`]).
    static ACCEPT: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Runs `decode` accepting function values only if `accept`. Lua has no bytecode verifier: a
/// crafted chunk can crash the VM, so bytecode is loaded only from this process's own VMs and
/// from authenticated cluster members (DESIGN §5).
pub fn accepting<T>(accept: bool, decode: impl FnOnce() -> T) -> T {
    /// Puts the previous setting back, also when `decode` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ACCEPT.with(|a| a.set(self.0));
        }
    }
    let _restore = Restore(ACCEPT.with(|a| a.replace(accept)));
    decode()
}

/// Lets values encoded and decoded on this thread carry functions of the VM that owns
/// `pack`/`unpack` (one VM per thread: a stage main loop or a worker).
pub fn install(pack: Function, unpack: Function) {
    CODEC.with(|c| *c.borrow_mut() = Some(Codec { pack, unpack }));
}

fn helpers() -> Option<(Function, Function)> {
    CODEC.with(|c| {
        c.borrow()
            .as_ref()
            .map(|c| (c.pack.clone(), c.unpack.clone()))
    })
}

/// Writes `f` as the payload of a binary element; returns the element type.
pub(super) fn write(buf: &mut Vec<u8>, f: &Function, depth: usize) -> Result<u8, Fail> {
    let Some((pack, _)) = helpers() else {
        // Only threads without a stage VM (tools, tests) get here.
        return Err(Fail::new("cannot send a function"));
    };
    let (code, upvalues): (LuaString, Table) = pack
        .call(f.clone())
        .map_err(|e| Fail::new(format!("cannot send this function: {e}")))?;
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.push(SUBTYPE);
    let code = code.as_bytes();
    let code_len =
        u32::try_from(code.len()).map_err(|_| Fail::new("function bytecode over 4 GiB"))?;
    buf.extend_from_slice(&code_len.to_le_bytes());
    buf.extend_from_slice(&code);
    let ty_at = buf.len();
    buf.push(0);
    buf[ty_at] = write_table(buf, &upvalues, depth + 1).map_err(|f| f.at("(upvalues)".into()))?;
    let len = i32::try_from(buf.len() - start - 5).map_err(|_| Fail::new("function too large"))?;
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    Ok(super::T_BINARY)
}

/// Rebuilds a function from the payload of a subtype 0x73 binary element.
pub(super) fn read(lua: &Lua, data: &[u8], at: usize, depth: usize) -> Result<Value, ValueError> {
    if !ACCEPT.with(|a| a.get()) {
        return Err(ValueError::new(
            "a function value from another node: functions cross between nodes only in an authenticated cluster (--secret-file)",
        ));
    }
    let Some((_, unpack)) = helpers() else {
        return Err(ValueError::new(
            "a function value arrived on a thread without a stage VM",
        ));
    };
    let mut r = Reader {
        buf: data,
        pos: 0,
        base: at,
    };
    let code_len = u32::from_le_bytes(r.array()?) as usize;
    let code = r.take(code_len)?;
    let ty = r.u8()?;
    let upvalues = read_value(lua, &mut r, ty, b"(upvalues)", depth)?;
    if !r.at_end() {
        return Err(malformed(r.offset(), "bytes after a function's upvalues"));
    }
    let code = lua.create_string(code).map_err(lua_error)?;
    unpack
        .call::<Function>((code, upvalues))
        .map(Value::Function)
        .map_err(|e| ValueError::new(format!("cannot load a received function: {e}")))
}
