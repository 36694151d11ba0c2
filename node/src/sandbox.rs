//! Running Lua code inside the sandbox of `lua/sandbox.lua` (stage-spec §5): every callback
//! gets a fresh private globals table, and the caller's is restored afterwards (synchronous
//! signals nest callbacks).

use mlua::{Function, IntoLuaMulti, Lua, MultiValue, Table, Value};

use crate::budget;

/// The sandbox prelude, run once per VM.
const PRELUDE: &str = include_str!("../../lua/sandbox.lua");

/// Handles on one VM's sandbox.
#[derive(Clone)]
pub struct Sandbox {
    /// `_ENV` of every script (`_SANDBOX`).
    proxy: Table,
    /// The proxy's metatable; `__index` is the current private table.
    meta: Table,
    /// The metatable of private tables (reads fall through to the real globals).
    private_meta: Table,
}

impl Sandbox {
    /// Runs the prelude; `store` is the table of process-store functions it uses.
    pub fn install(lua: &Lua, store: Table) -> mlua::Result<Sandbox> {
        let (proxy, meta, private_meta, pack, unpack): (Table, Table, Table, Function, Function) =
            lua.load(PRELUDE)
                .set_name("@lua/sandbox.lua")
                .call((lua.globals(), store))?;
        crate::value::function::install(pack, unpack);
        let private = lua.create_table()?;
        private.set_metatable(Some(private_meta.clone()))?;
        meta.raw_set("__index", private)?;
        Ok(Sandbox {
            proxy,
            meta,
            private_meta,
        })
    }

    /// The environment to load scripts with.
    pub fn env(&self) -> Table {
        self.proxy.clone()
    }

    /// Reads a global as the running code sees it (private table, then shared names).
    pub fn get(&self, name: &str) -> mlua::Result<Value> {
        self.proxy.get(name)
    }

    /// Calls `f` with a fresh private globals table holding `preset` (e.g. `_WAITFOR`), under a
    /// fresh instruction budget; restores the caller's private table afterwards.
    pub fn call<R: mlua::FromLuaMulti>(
        &self,
        lua: &Lua,
        f: &Function,
        preset: &[(&str, Value)],
        args: impl IntoLuaMulti,
    ) -> mlua::Result<R> {
        let private = lua.create_table()?;
        private.set_metatable(Some(self.private_meta.clone()))?;
        for (k, v) in preset {
            private.raw_set(*k, v.clone())?;
        }
        let previous: Value = self.meta.raw_get("__index")?;
        self.meta.raw_set("__index", private)?;
        let result = {
            // Left even when a Rust function under the call panics (the worker goes on).
            let _callback = budget::Callback::enter(lua);
            f.call::<R>(args)
        };
        self.meta.raw_set("__index", previous)?;
        result
    }

    /// Like [`Sandbox::call`] returning every result.
    pub fn call_multi(
        &self,
        lua: &Lua,
        f: &Function,
        preset: &[(&str, Value)],
        args: MultiValue,
    ) -> mlua::Result<MultiValue> {
        self.call(lua, f, preset, args)
    }
}

/// The sandbox of this VM.
pub fn of(lua: &Lua) -> mlua::Result<Sandbox> {
    lua.app_data_ref::<Sandbox>()
        .map(|s| s.clone())
        .ok_or_else(|| mlua::Error::runtime("no sandbox in this VM"))
}
