//! Worker threads: each owns a Lua VM and runs jobs from the [`Pool`] — `stage.submit`,
//! `thread.new` — on behalf of the stage that queued them (DESIGN §5). A job's function
//! arrives as bytecode with its upvalues and runs in a fresh sandbox; a blocked or slow job
//! holds only its worker, never a stage's main loop.

use std::sync::Arc;
use std::time::Duration;

use mlua::{Function, Lua, MultiValue, Value};

use crate::api;
use crate::inbound::{Delivery, Inbound};
use crate::node::Node;
use crate::pool::{Job, Pool, Task};
use crate::script::split_name;
use crate::stage::StageCtx;
use crate::{broker, sandbox, value, vm};

/// Starts `n` workers.
pub fn spawn(
    node: &Arc<Node>,
    pool: &Pool,
    n: usize,
    limits: vm::Limits,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    (0..n)
        .map(|i| {
            let node = node.clone();
            let pool = pool.clone();
            std::thread::Builder::new()
                .name(format!("worker:{i}"))
                .stack_size(crate::stage::STACK_SIZE)
                .spawn(move || match setup(&node, limits) {
                    Ok(lua) => {
                        while let Some(task) = pool.next() {
                            api::import::reload(&lua);
                            let job = match task {
                                Task::Job(job) => job,
                                Task::Socket(socket) => {
                                    broker::dispatch::run(&lua, &pool, socket);
                                    continue;
                                }
                            };
                            let key = job.key;
                            let stage = job.stage.clone();
                            // A bug must cost one job, not the worker and its key's queue.
                            let ran =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    run(&lua, &node, &pool, job)
                                }));
                            if ran.is_err() {
                                log::error!("stage {stage}: a job panicked; the worker goes on");
                            }
                            pool.done(key);
                        }
                    }
                    Err(e) => log::error!("worker {i}: cannot start: {e}"),
                })
        })
        .collect()
}

fn setup(node: &Arc<Node>, limits: vm::Limits) -> mlua::Result<Lua> {
    value::set_max_encoded(node.max_frame());
    let lua = vm::create(node, "", limits)?;
    lua.set_app_data(StageCtx::worker(node.clone()));
    Ok(lua)
}

/// Runs one job; a returned number `n > 0` queues it again `n` ms after it finished.
fn run(lua: &Lua, node: &Arc<Node>, pool: &Pool, job: Job) {
    act_for(lua, &job.stage, job.thread.as_deref());
    let outcome = call(lua, &job);
    match outcome {
        Ok(results) => {
            if let Some(thread) = &job.thread {
                deliver(node, &job.stage, thread, results);
                node.deliver_inbound(&job.stage, Inbound::ThreadDone(thread.clone()));
                return;
            }
            let again = match results.front() {
                Some(Value::Integer(n)) if *n > 0 => Some(*n as u64),
                Some(Value::Number(n)) if n.is_finite() && *n >= 1.0 => Some(*n as u64),
                _ => None,
            };
            if let Some(ms) = again {
                pool.submit_after(job, Duration::from_millis(ms));
            }
        }
        Err(e) => {
            log::error!("stage {}: submitted job: {e}", job.stage);
            node.count_error(&job.stage);
            if let Some(thread) = &job.thread {
                // The handler hears of the failure, as a callback does: (nil, error).
                let err = lua.create_string(e.to_string()).map(Value::String);
                let values = MultiValue::from_iter([Value::Nil, err.unwrap_or(Value::Nil)]);
                deliver(node, &job.stage, thread, values);
                node.deliver_inbound(&job.stage, Inbound::ThreadDone(thread.clone()));
            }
        }
    }
}

/// Makes the worker VM act for `stage` (and a `thread.new` handler): `_STAGE`, where signals
/// come from, `stage.name`.
pub fn act_for(lua: &Lua, stage: &str, thread: Option<&str>) {
    if let Ok(mut c) = api::ctx_mut(lua) {
        stage.clone_into(&mut c.name);
        c.thread = thread.map(str::to_owned);
    }
    // `stage.name` is a plain field: a job sees its own stage's.
    if let Ok(t) = lua.globals().get::<mlua::Table>("stage") {
        let _ = t.raw_set("name", stage);
    }
}

fn call(lua: &Lua, job: &Job) -> mlua::Result<MultiValue> {
    let mut values = value::decode_args(lua, &job.body).map_err(mlua::Error::external)?;
    let f = match values.pop_front() {
        Some(Value::Function(f)) => f,
        Some(Value::String(name)) => named(lua, &name.to_str()?)?,
        _ => return Err(mlua::Error::runtime("a job without a function")),
    };
    let stage = Value::String(lua.create_string(&job.stage)?);
    sandbox::of(lua)?.call_multi(lua, &f, &[("_STAGE", stage)], values)
}

/// `"file+member"`: the member function of a script's result.
pub(crate) fn named(lua: &Lua, name: &str) -> mlua::Result<Function> {
    let (file, member) = split_name(name, false);
    let scripts = api::ctx(lua)?.node.scripts().clone();
    let source = scripts
        .get(lua, &file)
        .map_err(mlua::Error::runtime)?
        .ok_or_else(|| {
            mlua::Error::runtime(format!("'{name}': script {} not found", file.display()))
        })?;
    let chunk = source.compile(lua)?;
    chunk.set_environment(sandbox::of(lua)?.env())?;
    match (chunk.call::<Value>(())?, member) {
        (Value::Table(t), Some(m)) => t.raw_get::<Function>(m.as_str()),
        (Value::Function(f), None) => Ok(f),
        _ => Err(mlua::Error::runtime(format!(
            "'{name}' does not name a function"
        ))),
    }
}

/// Sends `values` to callback `id` of `stage` on this node (a `thread.new` handler).
pub fn deliver(node: &Node, stage: &str, id: &str, values: MultiValue) {
    let values: Vec<Value> = values.into_iter().collect();
    match api::signal::body(id, "", Default::default(), &values) {
        Ok(buf) => {
            let d = Delivery::local(buf, node.instance(), None);
            if !node.deliver_local(stage, d) {
                log::warn!("thread result for stage {stage} dropped: the stage has stopped");
            }
        }
        Err(e) => log::error!("stage {stage}: thread result cannot be sent: {e}"),
    }
}
