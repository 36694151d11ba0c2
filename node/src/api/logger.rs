//! `logger.*` (seed name: `log4cxx.*`): Lua logging through the `log` crate (spec §6.13).
//!
//! `logger.out/info/warn/error/trace/debug(...)` convert every argument with `tostring`, apply the
//! `%` substitutions below to each one, join them with TAB and emit the result as one record,
//! `log::log!(target: "lua", level, "{}", message)` (target `lua.<name>` after a
//! `%{=name:level}` switch), so `RUST_LOG`‑style filters such as `lua=warn,lua.bot=trace` apply.
//! `out` and `info` log at INFO.
//!
//! Substitutions (after `%`, inside each argument):
//!
//! * `%l` → `FILE[WHAT:LINE]` of the calling function (e.g. `[string "main.lua"][main:12]`),
//!   `%F` → its `short_src`, `%M` → its `what` (`Lua`, `main`, `C`), `%L` → its current line
//!   (`-1` when unknown, e.g. when the caller is a C function such as `pcall`);
//! * `%{NAME}` → environment variable NAME (empty if unset or not a valid name);
//! * `%N{NAME}` → the same, right‑aligned in a field of N characters; a longer value keeps its
//!   *last* N characters (log4j's convention for truncation, matching the right alignment);
//!   `%0{NAME}` → nothing. N is capped at [`MAX_WIDTH`];
//! * `%{=name:level}`, `%{=name}`, `%{=:level}` → nothing printed; switches the logger name (if
//!   non‑empty) and/or the level (`info|warn|error|trace|debug`, also `warning`/`fatal`,
//!   case‑insensitive; unknown levels are ignored) for this call; the last switch wins;
//! * `%%` → `%`.
//!
//! Deliberate departures from the original's quirks: `%` followed by any other character (or by
//! nothing, or an unterminated `%{…`) is kept literally instead of dropping the `%` or repeating
//! text, so `logger.info("100%")` logs `100%` and `"50%x"` logs `50%x`.

use log::{Level, LevelFilter};
use mlua::{Function, Lua, MultiValue, Value};

/// The `log` target of records from Lua; a `%{=name}` switch logs to `lua.<name>`.
pub const TARGET: &str = "lua";

/// Largest field width honoured by `%N{NAME}` (a larger N is treated as this).
pub const MAX_WIDTH: usize = 1024;

/// Installs the global tables `logger` and `log4cxx` (the same table).
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let logger = lua.create_table()?;
    for (name, level) in [
        ("out", Level::Info),
        ("info", Level::Info),
        ("warn", Level::Warn),
        ("error", Level::Error),
        ("trace", Level::Trace),
        ("debug", Level::Debug),
    ] {
        logger.set(
            name,
            lua.create_function(move |lua, args: MultiValue| log_args(lua, level, args))?,
        )?;
    }
    let g = lua.globals();
    g.set("logger", logger.clone())?;
    g.set("log4cxx", logger)?;
    Ok(())
}

/// One logger call: formats `args` and emits the record at `level` (unless overridden).
fn log_args(lua: &Lua, level: Level, args: MultiValue) -> mlua::Result<()> {
    if log::max_level() == LevelFilter::Off {
        return Ok(());
    }
    let (message, over) = compose(lua, args)?;
    let level = over.level.unwrap_or(level);
    let target = match over.name.as_deref() {
        None | Some(TARGET) => TARGET.to_owned(),
        Some(name) => format!("{TARGET}.{name}"),
    };
    log::log!(target: &target, level, "{}", message);
    Ok(())
}

/// Per-call logger name / level switches collected from `%{=name:level}`.
#[derive(Debug, Default, PartialEq)]
struct Override {
    name: Option<String>,
    level: Option<Level>,
}

/// Location of the Lua function that called the logger (stack level 1).
struct Caller {
    short_src: String,
    what: &'static str,
    line: i64,
}

impl Caller {
    /// The cached location, looked up on first use.
    fn cached<'a>(lua: &Lua, cache: &'a mut Option<Caller>) -> &'a Caller {
        cache.get_or_insert_with(|| Caller::of(lua))
    }

    fn of(lua: &Lua) -> Caller {
        lua.inspect_stack(1, |d| {
            let src = d.source();
            Caller {
                short_src: src.short_src.as_deref().unwrap_or("?").to_owned(),
                what: src.what,
                line: d.current_line().map_or(-1, |l| l as i64),
            }
        })
        .unwrap_or(Caller {
            short_src: "[C]".to_owned(),
            what: "C",
            line: -1,
        })
    }
}

/// Converts, substitutes and TAB-joins the arguments; returns the message and the switches.
fn compose(lua: &Lua, args: MultiValue) -> mlua::Result<(String, Override)> {
    let tostring = match lua.globals().get::<Value>("tostring")? {
        Value::Function(f) => Some(f),
        _ => None,
    };
    let mut caller = None;
    let mut over = Override::default();
    let mut out = Vec::new();
    for (i, v) in args.into_iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        let text = to_bytes(tostring.as_ref(), v)?;
        substitute(lua, &mut out, &text, &mut over, &mut caller);
    }
    Ok((String::from_utf8_lossy(&out).into_owned(), over))
}

/// `tostring(v)` as bytes (strings pass through untouched, so they may be binary).
fn to_bytes(tostring: Option<&Function>, v: Value) -> mlua::Result<Vec<u8>> {
    match (v, tostring) {
        (Value::String(s), _) => Ok(s.as_bytes().to_vec()),
        (v, Some(f)) => Ok(f.call::<mlua::LuaString>(v)?.as_bytes().to_vec()),
        (v, None) => Ok(v.to_string()?.into_bytes()),
    }
}

/// Appends `text` to `out` with the `%` substitutions applied. The caller location is looked
/// up on first use and cached in `caller` (shared by all arguments of a call).
fn substitute(
    lua: &Lua,
    out: &mut Vec<u8>,
    text: &[u8],
    over: &mut Override,
    caller: &mut Option<Caller>,
) {
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        i += 1;
        if c != b'%' {
            out.push(c);
            continue;
        }
        match text.get(i) {
            Some(b'%') => {
                out.push(b'%');
                i += 1;
            }
            Some(b'l') => {
                let c = Caller::cached(lua, caller);
                out.extend_from_slice(format!("{}[{}:{}]", c.short_src, c.what, c.line).as_bytes());
                i += 1;
            }
            Some(b'F') => {
                out.extend_from_slice(Caller::cached(lua, caller).short_src.as_bytes());
                i += 1;
            }
            Some(b'M') => {
                out.extend_from_slice(Caller::cached(lua, caller).what.as_bytes());
                i += 1;
            }
            Some(b'L') => {
                out.extend_from_slice(Caller::cached(lua, caller).line.to_string().as_bytes());
                i += 1;
            }
            Some(b'{' | b'0'..=b'9') => match parse_brace(&text[i..]) {
                Some((width, name, used)) => {
                    i += used;
                    if let Some(spec) = name.strip_prefix(b"=") {
                        apply_override(over, spec);
                    } else {
                        out.extend_from_slice(env_field(name, width).as_bytes());
                    }
                }
                // Not `N{…}` or unterminated: keep the `%`, the rest is copied as text.
                None => out.push(b'%'),
            },
            // `%x` → `%x`, trailing `%` → `%`.
            _ => out.push(b'%'),
        }
    }
}

/// Parses `N{NAME}` / `{NAME}` at the start of `s` (just after the `%`): returns the optional
/// width, NAME and the number of bytes used, or `None` if `s` does not have that shape.
fn parse_brace(s: &[u8]) -> Option<(Option<usize>, &[u8], usize)> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let width = if digits == 0 {
        None
    } else {
        // Overlong digit runs saturate; the width is capped anyway.
        let w = s[..digits].iter().fold(0usize, |acc, d| {
            acc.saturating_mul(10).saturating_add(usize::from(d - b'0'))
        });
        Some(w.min(MAX_WIDTH))
    };
    if s.get(digits) != Some(&b'{') {
        return None;
    }
    let body = &s[digits + 1..];
    let close = body.iter().position(|&b| b == b'}')?;
    Some((width, &body[..close], digits + 1 + close + 1))
}

/// The value of environment variable `name`, right-aligned / truncated to `width`.
fn env_field(name: &[u8], width: Option<usize>) -> String {
    let value = std::str::from_utf8(name)
        .ok()
        // `var_os` may panic (older std) or misbehave on these; they can never be set anyway.
        .filter(|n| !n.is_empty() && !n.contains(['=', '\0']))
        .and_then(std::env::var_os)
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(width) = width else {
        return value;
    };
    let len = value.chars().count();
    if len >= width {
        value.chars().skip(len - width).collect()
    } else {
        format!("{value:>width$}")
    }
}

/// Applies `name:level` / `name` / `:level` from a `%{=…}`.
fn apply_override(over: &mut Override, spec: &[u8]) {
    let spec = String::from_utf8_lossy(spec);
    let (name, level) = spec.split_once(':').unwrap_or((&spec, ""));
    if !name.is_empty() {
        over.name = Some(name.to_owned());
    }
    if let Some(level) = parse_level(level) {
        over.level = Some(level);
    }
}

/// A level name, case-insensitive; `None` if empty or unknown.
fn parse_level(s: &str) -> Option<Level> {
    Some(match s.to_ascii_lowercase().as_str() {
        "info" => Level::Info,
        "warn" | "warning" => Level::Warn,
        "error" | "fatal" => Level::Error,
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
