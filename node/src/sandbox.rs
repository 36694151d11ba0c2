//! Running Lua code inside the sandbox of `lua/sandbox.lua` (stage-spec §5): every callback
//! gets a fresh private globals table, and the caller's is restored afterwards (synchronous
//! signals nest callbacks).

use mlua::{Function, IntoLuaMulti, Lua, MultiValue, Table, Value};

use crate::budget;

/// The sandbox prelude, run once per VM.
const PRELUDE: &str = include_str!("../../lua/sandbox.lua");

/// How scripts catch errors (shared with the router's control script).
const CAUGHT: &str = include_str!("../../lua/caught.lua");

/// Handles on one VM's sandbox.
#[derive(Clone)]
pub struct Sandbox {
    /// `_ENV` of every script (`_SANDBOX`).
    proxy: Table,
    /// The proxy's metatable; `__index` is the current private table.
    meta: Table,
    /// `enter(name, value, ...)`: makes a fresh private table current, returns the previous.
    enter: Function,
    /// `enter_message(...)`: the same for a message callback, with its `_WAITFOR`.
    enter_message: Function,
}

/// What a message callback finds in `_WAITFOR` (see docs/scripting.md).
#[derive(Debug, Default)]
pub struct WaitFor<'a> {
    /// `[0]`: the message id (the callback id with a NACK).
    pub key: &'a str,
    /// `[1]`: the sender's instance.
    pub instance: Option<u32>,
    /// `[2]`: the sender's stage, if it may be answered.
    pub sender: Option<&'a str>,
    /// The request id to answer with.
    pub corr: Option<u64>,
    /// A service's answer or notice, which takes no answer.
    pub final_: bool,
    /// A failure notice's reason.
    pub error: Option<&'a str>,
}

impl Sandbox {
    /// Runs the prelude; `store` is the table of process-store functions it uses.
    pub fn install(lua: &Lua, store: Table) -> mlua::Result<Sandbox> {
        type Prelude = (Table, Table, Table, Function, Function, Function, Function);
        let caught: Function = lua.load(CAUGHT).set_name("@lua/caught.lua").eval()?;
        let (proxy, meta, private_meta, pack, unpack, enter, enter_message): Prelude = lua
            .load(PRELUDE)
            .set_name("@lua/sandbox.lua")
            .call((lua.globals(), store, caught))?;
        crate::value::function::install(pack, unpack);
        let private = lua.create_table()?;
        private.set_metatable(Some(private_meta.clone()))?;
        meta.raw_set("__index", private)?;
        Ok(Sandbox {
            proxy,
            meta,
            enter,
            enter_message,
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
        let mut pairs = MultiValue::new();
        for (k, v) in preset {
            pairs.push_back(Value::String(lua.create_string(k)?));
            pairs.push_back(v.clone());
        }
        let previous: Value = self.enter.call(pairs)?;
        self.run(lua, f, previous, args)
    }

    /// Calls the message callback `f`, registered as `matched` (`_WAITFOR[-1]`), with
    /// `_WAITFOR` set from `w` and the message's `globals` (a table, or nil), as
    /// [`Sandbox::call`] does.
    pub fn call_message(
        &self,
        lua: &Lua,
        f: &Function,
        matched: &str,
        w: &WaitFor<'_>,
        globals: Value,
        args: MultiValue,
    ) -> mlua::Result<MultiValue> {
        let previous: Value = self.enter_message.call((
            globals,
            w.key,
            w.instance,
            w.sender,
            matched,
            w.corr,
            w.final_.then_some(true),
            w.error,
        ))?;
        self.run(lua, f, previous, args)
    }

    /// Runs `f` in the private table `enter` made current, then makes `previous` current again.
    fn run<R: mlua::FromLuaMulti>(
        &self,
        lua: &Lua,
        f: &Function,
        previous: Value,
        args: impl IntoLuaMulti,
    ) -> mlua::Result<R> {
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
