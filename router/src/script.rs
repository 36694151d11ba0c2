//! The Lua control script and the `router.*` API it keeps the forwarding table with.
//!
//! Events: `on_register(link, service_id, info)`, `on_close(link, reason)`, `on_mode(name,
//! mode)`. API: `router.route(service_id, token|0|nil)`, `router.master(class, token)`,
//! `router.mode(class, mode)`, `router.class(name)`, `router.name(class)`,
//! `router.members(class)`, `router.log(...)`. Script errors are logged with a traceback and
//! never stop the router.

use std::path::Path;
use std::sync::{Arc, Weak};

use mlua::{Function, Lua, Table as LuaTable, Value, Variadic};
use stage_proto::{Mode, ServiceId};

use crate::server::Router;

/// The default control script, used when `--script` is not given and `lua/router.lua` is not
/// in the working directory.
pub const DEFAULT_SCRIPT: &str = include_str!("../../lua/router.lua");

/// How scripts catch errors (shared with the nodes' sandbox).
const CAUGHT: &str = include_str!("../../lua/caught.lua");

/// The control VM.
pub struct Script {
    lua: Lua,
}

impl Script {
    /// Loads the control script. `source` is `(name, code)`.
    pub fn load(router: Weak<Router>, name: &str, code: &str) -> Result<Script, String> {
        let lua = Lua::new();
        install_api(&lua, router).map_err(|e| format!("router API: {e}"))?;
        // pcall / xpcall hand the script router.* errors as message strings, as on nodes.
        lua.load(CAUGHT)
            .set_name("@lua/caught.lua")
            .eval::<Function>()
            .and_then(|install| install.call::<()>(lua.globals()))
            .map_err(|e| format!("lua/caught.lua: {e}"))?;
        lua.load(code)
            .set_name(format!("@{name}"))
            .exec()
            .map_err(|e| format!("control script {name}: {e}"))?;
        Ok(Script { lua })
    }

    /// Reads the script named by `--script`, or the default one.
    pub fn source(path: Option<&Path>) -> Result<(String, String), String> {
        let default = Path::new("lua/router.lua");
        let path = match path {
            Some(p) => p,
            None if default.is_file() => default,
            None => return Ok(("lua/router.lua (built in)".into(), DEFAULT_SCRIPT.into())),
        };
        std::fs::read_to_string(path)
            .map(|code| (path.display().to_string(), code))
            .map_err(|e| {
                format!(
                    "cannot read control script {}: {e} (pass --script FILE, or omit it for the built-in lua/router.lua)",
                    path.display()
                )
            })
    }

    /// Calls the global event handler `name` if the script defines one; logs its errors.
    pub fn event(&self, name: &str, args: impl mlua::IntoLuaMulti) {
        let f: Option<Function> = match self.lua.globals().get(name) {
            Ok(Value::Function(f)) => Some(f),
            _ => None,
        };
        if let Some(f) = f {
            if let Err(e) = f.call::<()>(args) {
                log::error!("control script {name}: {e}");
            }
        }
    }

    /// Builds the `info` table of `on_register`.
    pub fn info(&self, fields: &[(&str, Value)]) -> mlua::Result<LuaTable> {
        let t = self.lua.create_table()?;
        for (k, v) in fields {
            t.set(*k, v.clone())?;
        }
        Ok(t)
    }

    pub fn string(&self, s: &str) -> mlua::Result<Value> {
        self.lua.create_string(s).map(Value::String)
    }
}

fn router_of(w: &Weak<Router>) -> mlua::Result<Arc<Router>> {
    w.upgrade()
        .ok_or_else(|| mlua::Error::runtime("router is shutting down"))
}

fn class_arg(v: i64) -> mlua::Result<u8> {
    u8::try_from(v)
        .ok()
        .filter(|c| *c != 0)
        .ok_or_else(|| mlua::Error::runtime(format!("class {v} out of range 1..255")))
}

fn install_api(lua: &Lua, router: Weak<Router>) -> mlua::Result<()> {
    let api = lua.create_table()?;

    let r = router.clone();
    api.set(
        "route",
        lua.create_function(move |_, (id, token): (u32, Option<u32>)| {
            let router = router_of(&r)?;
            router
                .route(ServiceId(id), token)
                .map_err(mlua::Error::runtime)
        })?,
    )?;

    let r = router.clone();
    api.set(
        "master",
        lua.create_function(move |_, (class, token): (i64, Option<u32>)| {
            let router = router_of(&r)?;
            let class = class_arg(class)?;
            router
                .table
                .update(|t| t.set_master(class, token.unwrap_or(0)))
                .map_err(mlua::Error::runtime)
        })?,
    )?;

    let r = router.clone();
    api.set(
        "mode",
        lua.create_function(move |_, (class, mode): (i64, String)| {
            let m = Mode::parse_class_mode(&mode).ok_or_else(|| {
                mlua::Error::runtime(format!(
                    "unknown mode '{mode}' (expected direct, roundrobin, master, hash, random or broadcast)"
                ))
            })?;
            let router = router_of(&r)?;
            let class = class_arg(class)?;
            router
                .table
                .update(|t| t.set_mode(class, m))
                .map_err(mlua::Error::runtime)
        })?,
    )?;

    let r = router.clone();
    api.set(
        "class",
        lua.create_function(move |_, name: String| {
            router_of(&r)?
                .ensure_class(&name)
                .map_err(mlua::Error::runtime)
        })?,
    )?;

    let r = router.clone();
    api.set(
        "name",
        lua.create_function(move |_, class: i64| {
            let router = router_of(&r)?;
            let table = router.table.load();
            Ok(table.class(class_arg(class)?).map(|c| c.name.clone()))
        })?,
    )?;

    let r = router;
    api.set(
        "members",
        lua.create_function(move |lua, class: i64| {
            let router = router_of(&r)?;
            // Copy out first: building Lua tables can run finalizers that call router.* and
            // would deadlock on the table lock.
            let members: Vec<(u32, u32, bool)> = {
                let table = router.table.load();
                table.class(class_arg(class)?).map_or_else(Vec::new, |c| {
                    c.members
                        .iter()
                        .map(|m| {
                            let token = m.link.as_ref().map_or(0, |l| l.token);
                            let alive = m.link.as_ref().is_some_and(|l| l.is_alive());
                            (m.id.0, token, alive)
                        })
                        .collect()
                })
            };
            let out = lua.create_table()?;
            for (id, token, alive) in members {
                let e = lua.create_table()?;
                e.set("id", id)?;
                e.set("token", token)?;
                e.set("alive", alive)?;
                out.push(e)?;
            }
            Ok(out)
        })?,
    )?;

    api.set(
        "log",
        lua.create_function(|lua, args: Variadic<Value>| {
            let mut line = String::new();
            for (i, v) in args.iter().enumerate() {
                if i > 0 {
                    line.push('\t');
                }
                let s: mlua::LuaString =
                    lua.globals().get::<Function>("tostring")?.call(v.clone())?;
                line.push_str(&s.to_string_lossy());
            }
            log::info!(target: "router.lua", "{line}");
            Ok(())
        })?,
    )?;

    lua.globals().set("router", api)
}
