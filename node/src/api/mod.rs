//! The `stage.*` API installed into every stage VM.

pub mod addtask;
pub mod broker;
pub mod broker_addr;
pub mod broker_socket;
pub mod config;
pub mod import;
pub mod load;
pub mod logger;
pub mod once;
pub mod print;
pub mod process;
pub mod signal;
pub mod store;
pub mod submit;
pub mod thread;
pub mod waitfor;

use std::sync::Arc;

use mlua::Lua;

use crate::node::Node;
use crate::stage::StageCtx;

/// The parts of `stage.*` written in Lua.
const STAGE_LUA: &str = include_str!("../../../lua/stage.lua");

/// `stage.proxy` (stage-spec §6.8).
const PROXY_LUA: &str = include_str!("../../../lua/lib/proxy.lua");

/// Installs `stage`, `print`, `logger`/`log4cxx`, `__` and `_STAGE` into a stage VM.
/// `env` is the sandbox proxy the Lua-written parts run in.
pub fn install(lua: &Lua, node: &Arc<Node>, name: &str, env: mlua::Table) -> mlua::Result<()> {
    let stage = lua.create_table()?;
    stage.set("signal", lua.create_function(signal::signal)?)?;
    stage.set("waitfor", lua.create_function(waitfor::waitfor)?)?;
    stage.set("addtask", lua.create_function(addtask::addtask)?)?;
    stage.set("load", lua.create_function(load::load)?)?;
    stage.set("require", lua.create_function(load::require)?)?;
    stage.set("once", lua.create_function(once::once)?)?;
    stage.set("submit", lua.create_function(submit::submit)?)?;
    stage.set(
        "id",
        lua.create_function(|lua, ()| Ok(ctx(lua)?.node.instance()))?,
    )?;
    stage.set("name", name)?;
    store::install(lua, &stage, node.store())?;
    logger::install(lua)?;
    thread::install(lua)?;
    import::install(lua)?;
    process::install(lua)?;
    broker::install(lua)?;
    lua.load(STAGE_LUA)
        .set_name("@lua/stage.lua")
        .set_environment(env)
        .call::<()>(stage.clone())?;
    let proxy: mlua::Function = lua
        .load(PROXY_LUA)
        .set_name("@lua/lib/proxy.lua")
        .call(())?;
    stage.set("proxy", proxy)?;
    let g = lua.globals();
    g.set("stage", stage)?;
    g.set("_STAGE", name)?;
    g.set("print", lua.create_function(print::print)?)?;
    Ok(())
}

/// Borrows the stage context of this VM.
pub fn ctx(lua: &Lua) -> mlua::Result<mlua::AppDataRef<'_, StageCtx>> {
    lua.app_data_ref::<StageCtx>()
        .ok_or_else(|| mlua::Error::runtime("stage.* called outside a stage"))
}

/// Mutably borrows the stage context; never held across a call into Lua.
pub fn ctx_mut(lua: &Lua) -> mlua::Result<mlua::AppDataRefMut<'_, StageCtx>> {
    lua.app_data_mut::<StageCtx>()
        .ok_or_else(|| mlua::Error::runtime("stage.* called outside a stage"))
}
