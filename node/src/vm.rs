//! Creating a Lua VM for stage code: standard libraries, limits, the sandbox and the APIs.

use std::sync::Arc;

use mlua::{Lua, LuaOptions, StdLib};

use crate::api;
use crate::budget;
use crate::node::Node;
use crate::sandbox::Sandbox;

/// Limits of every VM (from the command line).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes a VM may allocate (0: no limit). Past it, allocations fail with a Lua
    /// "not enough memory" error in the code that asked.
    pub memory: usize,
    /// VM instructions one callback may run (0: no limit), see [`budget`].
    pub instructions: u64,
}

/// A new VM for stage `name`, sandboxed, with the `stage.*` API.
pub fn create(node: &Arc<Node>, name: &str, limits: Limits) -> mlua::Result<Lua> {
    // SAFETY: the debug library and binary chunks are what "unsafe" enables. Scripts are the
    // operator's own code and see a reduced debug library (lua/sandbox.lua); bytecode is loaded
    // only from this process's VMs and from authenticated cluster members
    // (value::function::accepting), never from clients.
    let lua = unsafe { Lua::unsafe_new_with(StdLib::ALL_SAFE | StdLib::DEBUG, LuaOptions::new()) };
    if limits.memory > 0 {
        lua.set_memory_limit(limits.memory)?;
    }
    budget::install(&lua, limits.instructions)?;
    // Lua's warn() (e.g. stage.proxy handler errors) goes to the log, not to a closed stderr
    // switch; control messages ("@on", "@off") are not warnings.
    let pieces = std::sync::Mutex::new(String::new());
    lua.set_warning_function(move |_, msg, to_be_continued| {
        let mut text = pieces.lock().unwrap_or_else(|p| p.into_inner());
        text.push_str(msg);
        if !to_be_continued {
            if !text.starts_with('@') {
                log::warn!(target: "lua", "{text}");
            }
            text.clear();
        }
        Ok(())
    });
    // The sandbox first: the parts of the API written in Lua run inside it, like scripts.
    let store = api::store::sandbox_functions(&lua, node.store())?;
    let sandbox = Sandbox::install(&lua, store)?;
    let env = sandbox.env();
    lua.set_app_data(sandbox);
    api::install(&lua, node, name, env)?;
    Ok(lua)
}
