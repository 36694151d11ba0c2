//! Lua access to the process store: the functions the sandbox uses for `*NAME` globals, the
//! `__` accessor and `stage.v` (stage-spec §5.4, §5.6, §6.9).
//!
//! ```lua
//! __.NAME                 -- a fresh copy, or nil
//! __.NAME = v             -- store (nil deletes)
//! __("NAME")              -- the value
//! __("NAME", v)           -- store v, returns it
//! __("NAME", function (old) return new end)   -- atomic read-modify-write; returns new
//! __[n].NAME, __[n] = nil -- namespace n (an integer > 0), cleared with nil
//! for name, v in pairs(__) do ... end
//! stage.v(...)            -- the same as __(...)
//! ```

use std::sync::Arc;

use mlua::{Function, Lua, MultiValue, Table, Value};

use crate::store::Store;
use crate::value;

fn encode(v: &Value) -> mlua::Result<Option<Arc<[u8]>>> {
    if v.is_nil() {
        return Ok(None);
    }
    let mut buf = Vec::new();
    value::encode_value(&mut buf, v).map_err(mlua::Error::external)?;
    Ok(Some(Arc::from(buf)))
}

fn decode(lua: &Lua, bytes: Option<Arc<[u8]>>) -> mlua::Result<Value> {
    match bytes {
        None => Ok(Value::Nil),
        Some(b) => value::decode_value(lua, &b).map_err(mlua::Error::external),
    }
}

/// The functions `lua/sandbox.lua` receives from its host: the process store, and the
/// instruction budget's state.
pub fn sandbox_functions(lua: &Lua, store: &Arc<Store>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set(
        "exhausted",
        lua.create_function(|lua, ()| Ok(crate::budget::exhausted(lua)))?,
    )?;
    t.set(
        "interrupt",
        lua.create_function(|lua, ()| Err::<(), _>(crate::budget::interruption(lua)))?,
    )?;
    let s = store.clone();
    t.set(
        "get",
        lua.create_function(move |lua, name: String| match s.rule(&name) {
            Some(_) => decode(lua, s.get(&name)),
            None => Ok(Value::Nil),
        })?,
    )?;
    let s = store.clone();
    t.set(
        "owns",
        lua.create_function(move |_, name: String| Ok(s.rule(&name).is_some()))?,
    )?;
    let s = store.clone();
    t.set(
        "set",
        lua.create_function(move |_, (name, v): (String, Value)| {
            if s.rule(&name) == Some(true) {
                return Err(mlua::Error::runtime(format!("'{name}' is read only")));
            }
            s.set(&name, encode(&v)?);
            Ok(())
        })?,
    )?;
    let s = store.clone();
    t.set(
        "share",
        lua.create_function(
            move |_, (name, v, readonly): (String, Value, Option<bool>)| {
                if s.share(&name, readonly.unwrap_or(false))
                    && !v.is_nil()
                    && s.get(&name).is_none()
                {
                    s.set(&name, encode(&v)?);
                }
                Ok(())
            },
        )?,
    )?;
    let s = store.clone();
    t.set(
        "list",
        lua.create_function(move |lua, ()| lua.create_sequence_from(s.shared_names()))?,
    )?;
    Ok(t)
}

/// Refuses writes to a read-only `*NAME` through `__` and `stage.v` too.
fn writable(store: &Store, name: &str) -> mlua::Result<()> {
    if store.rule(name) == Some(true) {
        return Err(mlua::Error::runtime(format!("'{name}' is read only")));
    }
    Ok(())
}

/// `__(name [, v | fn])` within namespace `prefix`.
fn call(lua: &Lua, store: &Store, prefix: &str, args: MultiValue) -> mlua::Result<Value> {
    let mut args = args.into_iter();
    let name = match args.next() {
        Some(Value::String(s)) => format!("{prefix}{}", s.to_str()?),
        _ => {
            return Err(mlua::Error::runtime(
                "__(name [, value | function]): name must be a string",
            ))
        }
    };
    match args.next() {
        None => decode(lua, store.get(&name)),
        Some(Value::Function(f)) => {
            writable(store, &name)?;
            let new = store.update(
                &name,
                |old| {
                    let new: Value = f.call(decode(lua, old)?)?;
                    encode(&new)
                },
                || {
                    mlua::Error::runtime(format!(
                        "__('{name}', fn): other threads kept changing '{name}' while fn ran"
                    ))
                },
            )?;
            decode(lua, new)
        }
        Some(v) => {
            writable(store, &name)?;
            store.set(&name, encode(&v)?);
            Ok(v)
        }
    }
}

/// An accessor object over namespace `prefix` ("" for the root, `"#n."` for `__[n]`).
fn accessor(lua: &Lua, store: &Arc<Store>, prefix: String) -> mlua::Result<Table> {
    let object = lua.create_table()?;
    let meta = lua.create_table()?;
    let (s, p) = (store.clone(), prefix.clone());
    meta.set(
        "__index",
        lua.create_function(move |lua, (_, k): (Table, Value)| match k {
            Value::Integer(n) if n > 0 && p.is_empty() => {
                accessor(lua, &s, format!("#{n}.")).map(Value::Table)
            }
            Value::String(name) => decode(lua, s.get(&format!("{p}{}", name.to_str()?))),
            _ => Ok(Value::Nil),
        })?,
    )?;
    let (s, p) = (store.clone(), prefix.clone());
    meta.set(
        "__newindex",
        lua.create_function(move |_, (_, k, v): (Table, Value, Value)| match k {
            Value::Integer(n) if n > 0 && p.is_empty() && v.is_nil() => {
                s.clear(&format!("#{n}."));
                Ok(())
            }
            Value::String(name) => {
                let name = format!("{p}{}", name.to_str()?);
                writable(&s, &name)?;
                s.set(&name, encode(&v)?);
                Ok(())
            }
            other => Err(mlua::Error::runtime(format!(
                "__: cannot assign to a {} key (names are strings; __[n] = nil clears namespace n)",
                other.type_name()
            ))),
        })?,
    )?;
    let (s, p) = (store.clone(), prefix.clone());
    meta.set(
        "__call",
        lua.create_function(move |lua, args: MultiValue| {
            // The first argument is the accessor itself.
            call(lua, &s, &p, args.into_iter().skip(1).collect())
        })?,
    )?;
    let (s, p) = (store.clone(), prefix);
    meta.set(
        "__pairs",
        lua.create_function(move |lua, _: Table| {
            let names = s.names(&p);
            let s = s.clone();
            let p = p.clone();
            let mut i = 0;
            let next = lua.create_function_mut(move |lua, _: MultiValue| {
                while i < names.len() {
                    let name = &names[i];
                    i += 1;
                    // Root iteration skips the numbered namespaces.
                    if p.is_empty() && name.starts_with('#') {
                        continue;
                    }
                    let v = decode(lua, s.get(name))?;
                    if !v.is_nil() {
                        let key = lua.create_string(&name[p.len()..])?;
                        return Ok(MultiValue::from_iter([Value::String(key), v]));
                    }
                }
                Ok(MultiValue::new())
            })?;
            Ok(next)
        })?,
    )?;
    object.set_metatable(Some(meta))?;
    Ok(object)
}

/// Installs `__` and `stage.v`.
pub fn install(lua: &Lua, stage: &Table, store: &Arc<Store>) -> mlua::Result<()> {
    let root = accessor(lua, store, String::new())?;
    let s = store.clone();
    let v: Function = lua.create_function(move |lua, args: MultiValue| call(lua, &s, "", args))?;
    stage.set("v", v)?;
    lua.globals().set("__", root)
}
