//! A stage's main loop: one OS thread, one Lua VM, running the stage's main script, then its
//! `waitfor` callbacks and `addtask` timers one at a time, never concurrently (DESIGN §5).

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{Lua, Value};

use crate::api;
use crate::inbound::Inbound;
use crate::node::Node;
use crate::script::{Source, Watch};
use crate::{sandbox, vm};

/// Longest sleep of an idle main loop.
const IDLE_WAKE: Duration = Duration::from_secs(3600);

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
                Ok((lua, watch)) => main_loop(&lua, &name, watch, inbox),
                Err(e) => log::error!("stage {name}: cannot start: {e}"),
            }
        })
}

fn setup(node: Arc<Node>, spec: &StageSpec, limits: vm::Limits) -> mlua::Result<(Lua, Watch)> {
    crate::value::set_max_encoded(node.max_frame());
    let lua = vm::create(&node, &spec.name, limits)?;
    let scripts = node.scripts().clone();
    lua.set_app_data(StageCtx {
        node,
        name: spec.name.clone(),
        waitfors: Default::default(),
        timers: Default::default(),
        sync_depth: 0,
    });
    let mut watch = Watch::default();
    match scripts.get(&lua, &spec.script) {
        Ok(Some(source)) => {
            watch.track(&spec.script, &source);
            run_main(&lua, &spec.name, &source);
        }
        Ok(None) => log::warn!(
            "stage {}: main script {} vanished; running without it",
            spec.name,
            spec.script.display()
        ),
        Err(e) => log::error!("stage {}: main script: {e}", spec.name),
    }
    Ok((lua, watch))
}

/// Runs (or, after a change, re-runs) the main script in a fresh sandbox. Its callbacks
/// replace the ones of the same id; a table it returns registers each function field as a
/// `waitfor` of that name (stage-spec §4.2). Errors are logged; what the script registered
/// before failing keeps serving.
fn run_main(lua: &Lua, name: &str, source: &Source) {
    let run = || -> mlua::Result<()> {
        let sandbox = sandbox::of(lua)?;
        let main = source.compile(lua)?;
        main.set_environment(sandbox.env())?;
        let result: Value = sandbox.call(lua, &main, &[], ())?;
        if let Value::Table(t) = result {
            for pair in t.pairs::<Value, Value>() {
                if let (Value::String(k), Value::Function(f)) = pair? {
                    api::waitfor::register(lua, &k.to_str()?, f, Vec::new())?;
                }
            }
        }
        Ok(())
    };
    if let Err(e) = run() {
        log::error!("stage {name}: main script {}: {e}", source.path.display());
    }
}

fn main_loop(lua: &Lua, name: &str, mut watch: Watch, inbox: Receiver<Inbound>) {
    let scripts = match api::ctx(lua) {
        Ok(c) => c.node.scripts().clone(),
        Err(_) => return,
    };
    loop {
        // A changed main script is re-run between two messages: nothing queued is lost, and
        // a version that does not compile never replaces the running one (the cache keeps
        // the last good version).
        for (_, source) in watch.poll(&scripts, lua) {
            log::info!(
                "stage {name}: reloading {} (changed)",
                source.path.display()
            );
            run_main(lua, name, &source);
        }
        let next = api::addtask::run_due(lua);
        let wait = next
            .map_or(IDLE_WAKE, |t| t.saturating_duration_since(Instant::now()))
            .min(scripts.refresh());
        match inbox.recv_timeout(wait) {
            Ok(Inbound::Message(d)) => api::waitfor::dispatch(lua, d),
            Ok(Inbound::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    log::debug!("stage {name}: main loop ended");
}
