//! `print` writing through Rust's line-buffered stdout, so output reaches a pipe (the
//! launcher, a test, a log collector) line by line instead of when C stdio's buffer fills.

use std::io::Write;

use mlua::{Lua, MultiValue};

/// `print(...)`: values separated by tabs, via `tostring`.
pub fn print(lua: &Lua, args: MultiValue) -> mlua::Result<()> {
    let tostring: mlua::Function = lua.globals().get("tostring")?;
    let mut line = Vec::new();
    for (i, v) in args.into_iter().enumerate() {
        if i > 0 {
            line.push(b'\t');
        }
        let s: mlua::LuaString = tostring.call(v)?;
        line.extend_from_slice(&s.as_bytes());
    }
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    // A closed stdout must not turn into a Lua error in the middle of a callback.
    let _ = out.write_all(&line);
    let _ = out.flush();
    Ok(())
}
