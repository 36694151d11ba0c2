//! The `process` object (stage-spec §6.11).
//!
//! | read | value |
//! |---|---|
//! | `process.id` | OS process id |
//! | `process.tick` | now, in seconds (ms precision) |
//! | `process.args` | `{[0] = program, ...}` the command line |
//! | `process.stage` | this node's instance number |
//! | `process["%NAME"]` | environment variable NAME, or nil |
//! | `process["$NAME"]`, `process["$"]` | `--lua-config` value NAME, the whole config (see [`super::config`]) |
//! | `process.title` | the title last set |
//!
//! Writing `process["%NAME"] = v` sets the environment variable (nil unsets it),
//! `process["$NAME"] = json_text` a config value; writing
//! `process.title = s` records the title (`${program}` in it becomes the program name); it is
//! read back by `process.title`.

use std::sync::Mutex;

use mlua::{Lua, Table, Value};

use super::ctx;

static TITLE: Mutex<Option<String>> = Mutex::new(None);

fn title() -> Option<String> {
    TITLE.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

fn get(lua: &Lua, key: &str) -> mlua::Result<Value> {
    Ok(match key {
        "id" => Value::Integer(std::process::id() as i64),
        "tick" => Value::Number(super::thread::tick()),
        "stage" => Value::Integer(ctx(lua)?.node.instance() as i64),
        "title" => match title() {
            Some(t) => Value::String(lua.create_string(t)?),
            None => Value::Nil,
        },
        "args" => {
            let t = lua.create_table()?;
            for (i, a) in std::env::args_os().enumerate() {
                t.raw_set(i as i64, lua.create_string(a.as_encoded_bytes())?)?;
            }
            Value::Table(t)
        }
        k if k.starts_with('$') => super::config::get(lua, &k[1..])?,
        k => match k.strip_prefix('%') {
            Some(name) if !name.is_empty() => match std::env::var_os(name) {
                Some(v) => Value::String(lua.create_string(v.as_encoded_bytes())?),
                None => Value::Nil,
            },
            _ => Value::Nil,
        },
    })
}

fn set(key: &str, v: Value) -> mlua::Result<()> {
    if let Some(name) = key.strip_prefix('$') {
        return super::config::set(name, v);
    }
    if key == "title" {
        let program = std::env::args().next().unwrap_or_default();
        let title = v.to_string()?.replace("${program}", &program);
        *TITLE.lock().unwrap_or_else(|p| p.into_inner()) = Some(title);
        return Ok(());
    }
    match key.strip_prefix('%') {
        Some(name) if !name.is_empty() && !name.contains(['=', '\0']) => {
            // Environment writes race with other threads reading it; scripts that set
            // variables do so at start-up, before anything reads them.
            match v {
                Value::Nil => std::env::remove_var(name),
                v => {
                    let value = v.to_string()?;
                    if value.contains('\0') {
                        return Err(mlua::Error::runtime(format!(
                            "process[\"%{name}\"]: an environment value cannot contain a NUL byte"
                        )));
                    }
                    std::env::set_var(name, value)
                }
            }
            Ok(())
        }
        _ => Err(mlua::Error::runtime(format!(
            "process.{key} cannot be assigned (only process[\"%NAME\"], process[\"$NAME\"] and process.title)"
        ))),
    }
}

/// Installs `process`.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let process = lua.create_table()?;
    let meta = lua.create_table()?;
    meta.set(
        "__index",
        lua.create_function(|lua, (_, k): (Table, String)| get(lua, &k))?,
    )?;
    meta.set(
        "__newindex",
        lua.create_function(|_, (_, k, v): (Table, String, Value)| set(&k, v))?,
    )?;
    process.set_metatable(Some(meta))?;
    lua.globals().set("process", process)
}
