//! The Lua configuration behind `process["$NAME"]` (stage-spec §2.3, §6.11): a JSON object
//! given with `--lua-config FILE`, shared by every VM of the process.
//!
//! ```lua
//! process["$%cluster"]          -- config["%cluster"] as a Lua value (nil if absent)
//! process["$"]                  -- the whole config as a table
//! process["$limits"] = '{"n": 5}'   -- parse JSON text into config["limits"]
//! process["$"] = '{"a": 1}'         -- replace the whole config
//! ```
//! (The original swapped the last two; this follows its intent.)

use std::sync::RwLock;

use mlua::{Lua, Value};
use serde_json::{Map, Value as Json};

static CONFIG: RwLock<Option<Map<String, Json>>> = RwLock::new(None);

/// Reads the `--lua-config` file: a JSON object.
pub fn load_file(path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --lua-config {}: {e}", path.display()))?;
    match serde_json::from_str::<Json>(&text) {
        Ok(Json::Object(map)) => {
            *CONFIG.write().unwrap_or_else(|p| p.into_inner()) = Some(map);
            Ok(())
        }
        Ok(_) => Err(format!(
            "--lua-config {}: expected a JSON object ({{ \"key\": value, ... }})",
            path.display()
        )),
        Err(e) => Err(format!("--lua-config {}: {e}", path.display())),
    }
}

fn to_lua(lua: &Lua, j: &Json) -> mlua::Result<Value> {
    Ok(match j {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(lua.create_string(s)?),
        Json::Array(a) => {
            let t = lua.create_table_with_capacity(a.len(), 0)?;
            for (i, v) in a.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, v)?)?;
            }
            Value::Table(t)
        }
        Json::Object(m) => {
            let t = lua.create_table_with_capacity(0, m.len())?;
            for (k, v) in m {
                t.raw_set(k.as_str(), to_lua(lua, v)?)?;
            }
            Value::Table(t)
        }
    })
}

/// `process["$" .. key]`; an empty key is the whole config.
pub fn get(lua: &Lua, key: &str) -> mlua::Result<Value> {
    // Copy out first: creating Lua values can run code that writes the config.
    let value = {
        let config = CONFIG.read().unwrap_or_else(|p| p.into_inner());
        match (config.as_ref(), key) {
            (None, _) => None,
            (Some(map), "") => Some(Json::Object(map.clone())),
            (Some(map), key) => map.get(key).cloned(),
        }
    };
    value.map_or(Ok(Value::Nil), |v| to_lua(lua, &v))
}

/// `process["$" .. key] = json_text`; an empty key replaces the whole config, nil deletes.
pub fn set(key: &str, v: Value) -> mlua::Result<()> {
    let parsed = match &v {
        Value::Nil => None,
        Value::String(s) => Some(
            serde_json::from_slice::<Json>(&s.as_bytes())
                .map_err(|e| mlua::Error::runtime(format!("process[\"${key}\"]: not JSON: {e}")))?,
        ),
        other => {
            return Err(mlua::Error::runtime(format!(
                "process[\"${key}\"] takes JSON text, got a {}",
                other.type_name()
            )))
        }
    };
    let mut config = CONFIG.write().unwrap_or_else(|p| p.into_inner());
    if key.is_empty() {
        *config = match parsed {
            None => None,
            Some(Json::Object(m)) => Some(m),
            Some(_) => return Err(mlua::Error::runtime("process[\"$\"] takes a JSON object")),
        };
        return Ok(());
    }
    let map = config.get_or_insert_with(Map::new);
    match parsed {
        Some(j) => map.insert(key.to_owned(), j),
        None => map.remove(key),
    };
    Ok(())
}
