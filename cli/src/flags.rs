//! Lua values as command-line flags, the same way wherever a Lua file sets flags (a topology
//! entry of `stage run`, a `--config FILE`): for a key `k`,
//!
//! | value                     | flags                                   |
//! |---------------------------|-----------------------------------------|
//! | string or number          | `--k VALUE`                             |
//! | `true` / `false`          | `--k` / nothing                         |
//! | list `{ a, b }`           | `--k a --k b`                           |
//! | map `{ x = 1, y = 2 }`    | `--k x=1 --k y=2` (keys sorted)         |
//!
//! Underscores in keys become hyphens (`max_conn` → `--max-conn`), because Lua identifiers
//! cannot contain hyphens while command-line flags use them.

use mlua::{Table, Value};

/// Appends the flags for one entry key, following the table above.
pub fn push_flags(
    flags: &mut Vec<String>,
    key: &str,
    value: Value,
    at: &str,
) -> Result<(), String> {
    let flag = flag_name(key, at)?;
    match value {
        Value::Boolean(true) => flags.push(flag),
        Value::Boolean(false) => {}
        Value::Table(table) => match classify(&table, at)? {
            Shape::List(items) => {
                for (index, item) in items.into_iter().enumerate() {
                    let item = scalar(item, &format!("{at}[{}]", index + 1))?;
                    flags.extend([flag.clone(), item]);
                }
            }
            Shape::Map(pairs) => {
                for (name, item) in pairs {
                    let item = scalar(item, &format!("{at}.{name}"))?;
                    flags.extend([flag.clone(), format!("{name}={item}")]);
                }
            }
        },
        value @ (Value::String(_) | Value::Integer(_) | Value::Number(_)) => {
            let value = scalar(value, at)?;
            flags.extend([flag, value]);
        }
        other => {
            return Err(format!(
                "{at} must be a string, number, boolean, list or NAME = VALUE table, got {}",
                lua_type(&other)
            ))
        }
    }
    Ok(())
}

/// Turns an entry key into a long flag, refusing keys a CLI could not parse.
pub fn flag_name(key: &str, at: &str) -> Result<String, String> {
    let valid = key.starts_with(|c: char| c.is_ascii_alphanumeric())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(format!(
            "{at}: the key cannot become a command-line flag; \
             use letters, digits, `-` and `_`, starting with a letter or digit"
        ));
    }
    Ok(format!("--{}", key.replace('_', "-")))
}

/// A flag value: a string or number. Anything deeper is refused rather than
/// flattened, because no flattening would be obvious to the reader.
pub fn scalar(value: Value, at: &str) -> Result<String, String> {
    match value {
        Value::String(s) => utf8(&s, at),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Table(_) => Err(format!(
            "{at} must be a string or number, got table; \
             tables nest only one level (a list, or NAME = VALUE pairs)"
        )),
        other => Err(format!(
            "{at} must be a string or number, got {}",
            lua_type(&other)
        )),
    }
}

pub fn utf8(s: &mlua::LuaString, at: &str) -> Result<String, String> {
    s.to_str()
        .map(|s| s.to_owned())
        .map_err(|_| format!("{at} must be UTF-8 text"))
}

/// The two table layouts a topology uses.
pub enum Shape {
    /// Keys 1..=n, in order. An empty table is an empty list.
    List(Vec<Value>),
    /// String keys, sorted by key.
    Map(Vec<(String, Value)>),
}

/// Tells lists from maps, refusing tables that mix both or have holes.
pub fn classify(table: &Table, at: &str) -> Result<Shape, String> {
    let mut items = Vec::new();
    let mut pairs = Vec::new();
    for pair in table.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|e| format!("{at}: {e}"))?;
        match key {
            Value::Integer(index) => items.push((index, value)),
            Value::String(key) => pairs.push((utf8(&key, &format!("a key in {at}"))?, value)),
            other => {
                return Err(format!(
                    "{at} has a key of type {}; use a list or NAME = VALUE pairs",
                    lua_type(&other)
                ))
            }
        }
    }
    if !items.is_empty() && !pairs.is_empty() {
        return Err(format!(
            "{at} mixes list items with NAME = VALUE pairs; use one or the other"
        ));
    }
    if !pairs.is_empty() {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        return Ok(Shape::Map(pairs));
    }
    items.sort_by_key(|(index, _)| *index);
    let contiguous = items
        .iter()
        .zip(1..)
        .all(|((index, _), expected)| *index == expected);
    if !contiguous {
        return Err(format!(
            "{at} is a list with holes or unusual indices; write it as {{ a, b, c }}"
        ));
    }
    Ok(Shape::List(items.into_iter().map(|(_, v)| v).collect()))
}

/// The NAME = VALUE pairs of a table that must be a map (empty is fine).
pub fn map_pairs(table: &Table, at: &str) -> Result<Vec<(String, Value)>, String> {
    match classify(table, at)? {
        Shape::Map(pairs) => Ok(pairs),
        Shape::List(items) if items.is_empty() => Ok(Vec::new()),
        Shape::List(_) => Err(format!("{at} must have NAME = VALUE keys, not list items")),
    }
}

/// Lua's `type()` name: integers and floats are both "number" to Lua users.
pub fn lua_type(value: &Value) -> &'static str {
    match value {
        Value::Integer(_) | Value::Number(_) => "number",
        other => other.type_name(),
    }
}
