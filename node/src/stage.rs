//! A stage's main loop: one OS thread, one Lua VM, running the stage's main script, then its
//! `waitfor` callbacks and `addtask` timers one at a time, never concurrently (DESIGN §5).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{Lua, Value};

use crate::api;
use crate::inbound::{Inbound, InboxRx};
use crate::node::Node;
use crate::script::{Source, Watch};
use crate::{sandbox, vm};

/// Longest sleep of an idle main loop.
const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// Stack of a stage or worker thread.
pub const STACK_SIZE: usize = 16 << 20;

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
    /// A worker VM (no callbacks or timers of its own; `name` changes per job).
    pub worker: bool,
    /// In a worker running a `thread.new` function: its handler id (for `thread.signal`).
    pub thread: Option<String>,
    /// `thread.new` handler ids to unregister, and when.
    pub expiring: Vec<(Instant, String)>,
}

impl StageCtx {
    fn main(node: Arc<Node>, name: String) -> StageCtx {
        StageCtx {
            node,
            name,
            waitfors: Default::default(),
            timers: Default::default(),
            sync_depth: 0,
            worker: false,
            thread: None,
            expiring: Vec::new(),
        }
    }

    /// The context of a worker VM.
    pub fn worker(node: Arc<Node>) -> StageCtx {
        StageCtx {
            worker: true,
            ..StageCtx::main(node, String::new())
        }
    }
}

/// Starts the stage's thread.
pub fn spawn(
    node: Arc<Node>,
    spec: StageSpec,
    limits: vm::Limits,
    inbox: InboxRx,
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
    lua.set_app_data(StageCtx::main(node, spec.name.clone()));
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
/// `waitfor` of that name, a function it returns is the idle function (stage-spec §4.2). Errors are logged; what the script registered
/// before failing keeps serving.
fn run_main(lua: &Lua, name: &str, source: &Source) {
    let run = || -> mlua::Result<()> {
        let sandbox = sandbox::of(lua)?;
        let main = source.compile(lua)?;
        main.set_environment(sandbox.env())?;
        let result: Value = sandbox.call(lua, &main, &[], ())?;
        match result {
            Value::Table(t) => {
                for pair in t.pairs::<Value, Value>() {
                    if let (Value::String(k), Value::Function(f)) = pair? {
                        api::waitfor::register(lua, &k.to_str()?, f, &[])?;
                    }
                }
            }
            // The idle function (stage-spec §4.3): called when the loop is idle, again after
            // the number of ms it returns; nothing or <= 0 stops it (as the docs say).
            Value::Function(f) => api::addtask::set_idle(lua, f)?,
            _ => {}
        }
        Ok(())
    };
    if let Err(e) = run() {
        log::error!("stage {name}: main script {}: {e}", source.path.display());
        api::waitfor::count_error(lua);
    }
}

/// Stopping (luna's `on_quit_signal`): the stage's `on_quit_signal` callback, if registered,
/// runs with the signal's name; then every message already queued is handled, so nothing
/// accepted before the signal is lost. The node's grace period bounds the whole.
fn quit(lua: &Lua, name: &str, signal: &str, inbox: &InboxRx) {
    call_hook(lua, name, QUIT_HOOK, signal);
    let mut drained = 0usize;
    while let Ok(event) = inbox.try_recv() {
        handle(lua, name, event);
        drained += 1;
    }
    log::debug!("stage {name}: stopped after {drained} queued events");
}

/// Calls the stage's callback registered exactly as `hook` with `arg`; false if there is none.
fn call_hook(lua: &Lua, name: &str, hook: &str, arg: &str) -> bool {
    let Some(h) = api::ctx(lua).ok().and_then(|c| c.waitfors.get(hook)) else {
        return false;
    };
    let run = || -> mlua::Result<()> {
        let args: mlua::MultiValue = h
            .bound
            .values(lua)?
            .into_iter()
            .chain([Value::String(lua.create_string(arg)?)])
            .collect();
        sandbox::of(lua)?
            .call_multi(lua, &h.f, &[], args)
            .map(|_| ())
    };
    if let Err(e) = run() {
        log::error!("stage {name}: {hook}: {e}");
    }
    true
}

/// Back-pressure: the router refused messages to stage `busy`. The stage's `on_overload`
/// callback, if any, decides (slow down, shed load); otherwise it is logged.
fn overloaded(lua: &Lua, name: &str, busy: &str) {
    if !call_hook(lua, name, OVERLOAD_HOOK, busy) {
        log::warn!("stage {name}: stage '{busy}' is overloaded; messages to it are refused");
    }
}

/// The callback id of the overload hook.
const OVERLOAD_HOOK: &str = "on_overload";

/// The callback id of the quit hook.
const QUIT_HOOK: &str = "on_quit_signal";

/// How long a `thread.new` handler stays registered after its function finished
/// (stage-spec §6.11: messages still in flight reach it).
const THREAD_LINGER: Duration = Duration::from_millis(1000);

/// Unregisters `thread.new` handlers whose time is up.
fn expire_threads(lua: &Lua) {
    let Ok(mut c) = api::ctx_mut(lua) else { return };
    if c.expiring.is_empty() {
        return;
    }
    let now = Instant::now();
    let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut c.expiring)
        .into_iter()
        .partition(|(t, _)| *t <= now);
    c.expiring = keep;
    for (_, id) in due {
        c.waitfors.remove(&id);
    }
}

/// Handles one inbox event other than `Stop`.
fn handle(lua: &Lua, name: &str, event: Inbound) {
    match event {
        Inbound::Message(d) => {
            // A bug must cost one message, not the stage.
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                api::waitfor::dispatch(lua, d)
            }));
            if ran.is_err() {
                log::error!("stage {name}: a callback panicked; the stage goes on");
            }
        }
        Inbound::Register { id, body } => {
            if let Err(e) = api::waitfor::registered_by_worker(lua, &id, &body) {
                log::error!("stage {name}: stage.waitfor('{id}') from a job: {e}");
            }
        }
        Inbound::AddTask { id, ms, body } => {
            if let Err(e) = api::addtask::added_by_worker(lua, id, ms, &body) {
                log::error!("stage {name}: stage.addtask from a job: {e}");
            }
        }
        Inbound::Overload(busy) => overloaded(lua, name, &busy),
        Inbound::ThreadDone(id) => {
            if let Ok(mut c) = api::ctx_mut(lua) {
                c.expiring.push((Instant::now() + THREAD_LINGER, id));
            }
        }
        Inbound::Stop(_) => {}
    }
}

fn main_loop(lua: &Lua, name: &str, mut watch: Watch, inbox: InboxRx) {
    let (scripts, stats) = match api::ctx(lua) {
        Ok(c) => (c.node.scripts().clone(), c.node.stats(name).cloned()),
        Err(_) => return,
    };
    let stats = stats.unwrap_or_default();
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
            stats.reloads.fetch_add(1, Ordering::Relaxed);
        }
        stats.lua_memory.store(lua.used_memory(), Ordering::Relaxed);
        api::import::reload(lua);
        expire_threads(lua);
        let next = api::addtask::run_due(lua);
        let wait = next
            .map_or(IDLE_WAKE, |t| t.saturating_duration_since(Instant::now()))
            .min(scripts.refresh());
        match inbox.recv_timeout(wait) {
            Ok(Inbound::Stop(signal)) => {
                quit(lua, name, signal, &inbox);
                break;
            }
            Ok(event) => handle(lua, name, event),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    log::debug!("stage {name}: main loop ended");
}
