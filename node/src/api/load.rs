//! `stage.load` and `stage.require` (stage-spec §6.2): scripts by module name through the
//! search path, with fail-over and hot reload (see [`crate::script`]).
//!
//! ```lua
//! stage.load("test+hello")(1, 2)            -- run test.lua, pick its member `hello`
//! stage.load("a.b", function(r, i) ... end) -- i = { depth, path, mtime }; on a miss
//!                                           -- f(nil, { "a/b", member })
//! stage.require("lib.util")                 -- once per VM (package.loaded)
//! ```

use mlua::{Function, Lua, MultiValue, Table, Value};

use super::ctx;
use crate::sandbox;
use crate::script::{split_name, Source};

/// Runs a resolved source in the caller's sandbox; its first result.
fn execute(lua: &Lua, source: &Source) -> mlua::Result<Value> {
    let chunk = source.compile(lua)?;
    chunk.set_environment(sandbox::of(lua)?.env())?;
    chunk.call::<Value>(())
}

fn member(value: Value, member: &Option<String>) -> mlua::Result<Value> {
    match (member, value) {
        (Some(m), Value::Table(t)) => t.raw_get(m.as_str()),
        (_, v) => Ok(v),
    }
}

fn info(lua: &Lua, source: &Source) -> mlua::Result<Table> {
    lua.create_sequence_from([
        Value::Integer(source.depth as i64),
        Value::String(lua.create_string(source.path.to_string_lossy().as_bytes())?),
        Value::Integer(source.mtime_secs() as i64),
    ])
}

fn miss(
    lua: &Lua,
    name: &str,
    member: &Option<String>,
    f: Option<Function>,
) -> mlua::Result<MultiValue> {
    let Some(f) = f else {
        return Ok(MultiValue::new());
    };
    // The file as searched ("a.b" -> "a/b"), without ".lua" (stage-spec §6.2).
    let path = split_name(name, true).0;
    let file = path.to_string_lossy();
    let i = lua.create_table()?;
    i.raw_set(1, file.trim_end_matches(".lua"))?;
    if let Some(m) = member {
        i.raw_set(2, m.as_str())?;
    }
    f.call((Value::Nil, i))
}

fn find(lua: &Lua, name: &str) -> mlua::Result<(Option<Source>, Option<String>)> {
    let (file, member) = split_name(name, true);
    let scripts = ctx(lua)?.node.scripts().clone();
    let source = scripts.get(lua, &file).map_err(mlua::Error::runtime)?;
    Ok((source, member))
}

/// `stage.load(name [, f])`: runs the script on every call.
pub fn load(lua: &Lua, (name, f): (String, Option<Function>)) -> mlua::Result<MultiValue> {
    let (source, m) = find(lua, &name)?;
    let Some(source) = source else {
        return miss(lua, &name, &m, f);
    };
    let r = member(execute(lua, &source)?, &m)?;
    match f {
        Some(f) => f.call((r, info(lua, &source)?)),
        None => Ok(MultiValue::from_iter([r])),
    }
}

/// `stage.require(name [, f])`: runs the script once per VM and caches its result in
/// `package.loaded` under the name without its `+member`.
pub fn require(lua: &Lua, (name, f): (String, Option<Function>)) -> mlua::Result<MultiValue> {
    let key = name.split('+').next().unwrap_or(&name).to_owned();
    let loaded: Table = lua.globals().get::<Table>("package")?.get("loaded")?;
    let cached: Value = loaded.raw_get(key.as_str())?;
    let (value, i, m) = if cached.is_nil() {
        let (source, m) = find(lua, &name)?;
        let Some(source) = source else {
            return miss(lua, &name, &m, f);
        };
        let r = execute(lua, &source)?;
        // Like Lua's require: a script returning nothing is recorded as true.
        let stored = if r.is_nil() { Value::Boolean(true) } else { r };
        loaded.raw_set(key.as_str(), stored.clone())?;
        (stored, Value::Table(info(lua, &source)?), m)
    } else {
        (cached, Value::Nil, split_name(&name, true).1)
    };
    let r = member(value, &m)?;
    match f {
        Some(f) => f.call((r, i)),
        None => Ok(MultiValue::from_iter([r])),
    }
}
