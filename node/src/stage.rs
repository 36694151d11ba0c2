//! A stage's main loop: one OS thread, one Lua VM, running the stage's main script, then its
//! `waitfor` callbacks and `addtask` timers one at a time, never concurrently (DESIGN §5).

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::Lua;

use crate::api;
use crate::inbound::Inbound;
use crate::node::Node;
use crate::{sandbox, vm};

/// Stack of a stage thread.
const STACK_SIZE: usize = 16 << 20;

/// A stage to run: its name and main script.
#[derive(Debug, Clone)]
pub struct StageSpec {
    pub name: String,
    pub script: PathBuf,
}

/// Per-VM state the `stage.*` functions work on (kept in the VM's app data).
pub struct StageCtx {
    pub node: Arc<Node>,
    pub name: String,
    pub waitfors: api::waitfor::Registry,
    pub timers: api::addtask::Timers,
    /// Nesting of synchronous `":id"` signals in progress.
    pub sync_depth: u32,
}

/// Starts the stage's thread.
pub fn spawn(
    node: Arc<Node>,
    spec: StageSpec,
    limits: vm::Limits,
    inbox: Receiver<Inbound>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("stage:{}", spec.name))
        // Lua calls nest on this stack (callbacks, synchronous signals, deep tables).
        .stack_size(STACK_SIZE)
        .spawn(move || {
            let name = spec.name.clone();
            match setup(node, &spec, limits) {
                Ok(lua) => main_loop(&lua, &name, inbox),
                Err(e) => log::error!("stage {name}: cannot start: {e}"),
            }
        })
}

fn setup(node: Arc<Node>, spec: &StageSpec, limits: vm::Limits) -> mlua::Result<Lua> {
    crate::value::set_max_encoded(node.max_frame());
    let lua = vm::create(&node, &spec.name, limits)?;
    lua.set_app_data(StageCtx {
        node,
        name: spec.name.clone(),
        waitfors: Default::default(),
        timers: Default::default(),
        sync_depth: 0,
    });
    let code = std::fs::read(&spec.script)
        .map_err(|e| mlua::Error::runtime(format!("cannot read {}: {e}", spec.script.display())))?;
    let sandbox = sandbox::of(&lua)?;
    // A failing main script is logged; whatever it registered before failing keeps serving.
    let main = lua
        .load(code)
        .set_name(format!("@{}", spec.script.display()))
        .set_environment(sandbox.env())
        .into_function();
    if let Err(e) = main.and_then(|f| sandbox.call::<()>(&lua, &f, &[], ())) {
        log::error!("stage {}: main script: {e}", spec.name);
    }
    Ok(lua)
}

fn main_loop(lua: &Lua, name: &str, inbox: Receiver<Inbound>) {
    loop {
        let next = api::addtask::run_due(lua);
        let wait = next.map_or(Duration::from_secs(3600), |t| {
            t.saturating_duration_since(Instant::now())
        });
        match inbox.recv_timeout(wait) {
            Ok(Inbound::Message(d)) => api::waitfor::dispatch(lua, d),
            Ok(Inbound::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    log::debug!("stage {name}: main loop ended");
}
