//! luna's `import(file)` (luna-spec §5): a module with an environment of its own.
//!
//! `import("x.lua")` runs the file once per VM in a fresh table whose reads fall back to the
//! stage's globals and whose writes stay in it, and returns that table (the module). The file
//! is found through the search path like every script. When the file changes it is run again
//! *in the same table* (state written as `x = x or {}` survives; a version that does not
//! compile is not run, the old functions keep serving). The key is the exact string given.

use std::path::{Path, PathBuf};

use mlua::{Lua, Table, Value};

use super::ctx;
use crate::sandbox;
use crate::script::{Source, Watch};

/// The modules imported into one VM.
#[derive(Default)]
pub struct Imports {
    modules: Vec<(PathBuf, Table)>,
    watch: Watch,
}

fn run_in(lua: &Lua, source: &Source, env: &Table) -> mlua::Result<()> {
    let chunk = source.compile(lua)?;
    chunk.set_environment(env.clone())?;
    chunk.call::<()>(())
}

/// `import(file)`: the module table, or nil (logged) when the file is missing or fails.
pub fn import(lua: &Lua, file: String) -> mlua::Result<Value> {
    let path = PathBuf::from(&file);
    let existing = lua.app_data_ref::<Imports>().and_then(|i| {
        i.modules
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, t)| t.clone())
    });
    if let Some(env) = existing {
        return Ok(Value::Table(env));
    }
    let scripts = ctx(lua)?.node.scripts().clone();
    let source = match scripts.get(lua, Path::new(&file)) {
        Ok(Some(s)) => s,
        Ok(None) => {
            log::warn!("import {file}: not found");
            return Ok(Value::Nil);
        }
        Err(e) => {
            log::warn!("import {file}: {e}");
            return Ok(Value::Nil);
        }
    };
    let env = lua.create_table()?;
    let meta = lua.create_table()?;
    meta.set("__index", sandbox::of(lua)?.env())?;
    env.set_metatable(Some(meta))?;
    // Registered before it runs: a module whose first run fails is still reloaded when fixed.
    if let Some(mut imports) = lua.app_data_mut::<Imports>() {
        imports.modules.push((path.clone(), env.clone()));
        imports.watch.track(&path, &source);
    }
    match run_in(lua, &source, &env) {
        Ok(()) => Ok(Value::Table(env)),
        Err(e) => {
            log::error!("import {file}: {e}");
            Ok(Value::Nil)
        }
    }
}

/// Re-runs changed modules in their tables; called between callbacks.
pub fn reload(lua: &Lua) {
    let Ok(scripts) = ctx(lua).map(|c| c.node.scripts().clone()) else {
        return;
    };
    // Take the watch out while it compiles (that runs the VM): no borrow held meanwhile.
    let mut watch = match lua.app_data_mut::<Imports>() {
        Some(mut imports) if !imports.modules.is_empty() => std::mem::take(&mut imports.watch),
        _ => return,
    };
    let polled = watch.poll(&scripts, lua);
    let changed = match lua.app_data_mut::<Imports>() {
        Some(mut imports) => {
            imports.watch = watch;
            polled
                .into_iter()
                .filter_map(|(path, source)| {
                    let env = imports.modules.iter().find(|(p, _)| *p == path)?.1.clone();
                    Some((source, env))
                })
                .collect::<Vec<_>>()
        }
        None => return,
    };
    for (source, env) in changed {
        match run_in(lua, &source, &env) {
            Ok(()) => log::info!("import {}: reloaded", source.path.display()),
            Err(e) => log::error!("import {}: reload: {e}", source.path.display()),
        }
    }
}

/// Installs `import`.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    lua.set_app_data(Imports::default());
    lua.globals().set("import", lua.create_function(import)?)
}
