//! `stage.addtask`: timers on the stage's main loop (stage-spec §6.3).
//!
//! `addtask(ms, f, v...)` / `addtask(f, v...)` run `f(v...)` after `ms` (0: at the next turn of
//! the loop). The first result decides what happens next: a number `n > 0` runs it again after
//! `n` ms, `n <= 0` stops it, no result repeats with the previous interval (so `addtask(0, f)`
//! runs once). A task that raises an error is logged and stopped. `addtask(handle, nil)` cancels.
//! Timers never run concurrently with the stage's `waitfor` callbacks.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use mlua::{Function, Lua, MultiValue, Value};

use super::{ctx, ctx_mut};

struct Task {
    f: Function,
    /// The arguments, serialised when the task was added: every run gets fresh copies.
    args: Vec<u8>,
    interval_ms: u64,
    /// Bumped by a reschedule; queue entries of older generations are stale.
    generation: u64,
    /// When it runs next (the live queue entry's time).
    due: Instant,
}

/// The stage's pending timers.
#[derive(Default)]
pub struct Timers {
    queue: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    tasks: HashMap<u64, Task>,
    /// The task running the main script's idle function, replaced when the script reloads.
    idle: Option<u64>,
}

impl Timers {
    fn schedule(&mut self, id: u64, after_ms: u64) {
        let due = Instant::now() + Duration::from_millis(after_ms);
        let Some(t) = self.tasks.get_mut(&id) else {
            return;
        };
        t.due = due;
        let generation = t.generation;
        self.queue.push(Reverse((due, id, generation)));
        self.compact();
    }

    /// Cancelled and rescheduled tasks leave stale queue entries behind; rebuild the queue
    /// from the live tasks before they outnumber them, so cancel/reschedule churn cannot grow
    /// memory without bound.
    fn compact(&mut self) {
        if self.queue.len() <= 2 * self.tasks.len() + 64 {
            return;
        }
        self.queue = self
            .tasks
            .iter()
            .map(|(id, t)| Reverse((t.due, *id, t.generation)))
            .collect();
    }
}

fn millis(v: &Value) -> Option<u64> {
    match v {
        Value::Integer(i) => Some(i.unsigned_abs()),
        Value::Number(n) if n.is_finite() => Some(n.abs() as u64),
        _ => None,
    }
}

fn handle(id: u64) -> String {
    format!("task:{id}")
}

/// Task ids are unique in the process, so a worker can hand out the handle of a task its
/// stage's main loop will add.
fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `stage.addtask(...)`.
pub fn addtask(lua: &Lua, args: MultiValue) -> mlua::Result<Value> {
    if ctx(lua)?.worker {
        return from_worker(lua, args);
    }
    let mut args: Vec<Value> = args.into_iter().collect();
    match args.first() {
        Some(Value::String(h)) => {
            let h = h.to_str()?.to_owned();
            let id = h
                .strip_prefix("task:")
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| {
                    mlua::Error::runtime(format!("stage.addtask: '{h}' is not a task handle"))
                })?;
            let mut c = ctx_mut(lua)?;
            let timers = &mut c.timers;
            match (args.get(1), args.get(2)) {
                // (handle, nil): cancel.
                (None | Some(Value::Nil), _) => Ok(Value::Boolean(timers.tasks.remove(&id).is_some())),
                // (handle, f): replace the function.
                (Some(Value::Function(f)), _) => Ok(Value::Boolean(match timers.tasks.get_mut(&id) {
                    Some(t) => {
                        t.f = f.clone();
                        true
                    }
                    None => false,
                })),
                // (handle, ms [, f]): run next in ms, then every ms; optionally a new function.
                (Some(ms), f) => {
                    let ms = millis(ms).ok_or_else(|| {
                        mlua::Error::runtime("stage.addtask(handle, ms [, f]): ms must be a number")
                    })?;
                    let Some(t) = timers.tasks.get_mut(&id) else {
                        return Ok(Value::Boolean(false));
                    };
                    t.interval_ms = ms;
                    t.generation += 1;
                    if let Some(Value::Function(f)) = f {
                        t.f = f.clone();
                    }
                    timers.schedule(id, ms);
                    Ok(Value::Boolean(true))
                }
            }
        }
        Some(Value::Function(_)) => start(lua, 0, args),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => {
            let ms = millis(v).unwrap_or(0);
            args.remove(0);
            start(lua, ms, args)
        }
        _ => Err(mlua::Error::runtime(
            "stage.addtask: expected (ms, function, ...), (function, ...), (handle, nil), (handle, ms [, function]) or (handle, function)",
        )),
    }
}

fn start(lua: &Lua, ms: u64, mut args: Vec<Value>) -> mlua::Result<Value> {
    let Some(Value::Function(f)) = (!args.is_empty()).then(|| args.remove(0)) else {
        return Err(mlua::Error::runtime(
            "stage.addtask: missing the function to run",
        ));
    };
    let mut encoded = Vec::new();
    crate::value::encode_args(&mut encoded, args.iter()).map_err(mlua::Error::external)?;
    let id = next_id();
    add(lua, id, ms, f, encoded)?;
    Ok(Value::String(lua.create_string(handle(id))?))
}

fn add(lua: &Lua, id: u64, ms: u64, f: Function, args: Vec<u8>) -> mlua::Result<()> {
    let mut c = ctx_mut(lua)?;
    c.timers.tasks.insert(
        id,
        Task {
            f,
            args,
            interval_ms: ms,
            generation: 0,
            due: Instant::now(),
        },
    );
    c.timers.schedule(id, ms);
    Ok(())
}

/// `stage.addtask(ms, f, v...)` in a job: the task belongs to the job's stage, so it is sent
/// to that stage's main loop (the function as bytecode); the handle is returned at once.
fn from_worker(lua: &Lua, args: MultiValue) -> mlua::Result<Value> {
    let mut args: Vec<Value> = args.into_iter().collect();
    let ms = match args.first().and_then(millis) {
        Some(ms) => {
            args.remove(0);
            ms
        }
        None => 0,
    };
    if !matches!(args.first(), Some(Value::Function(_))) {
        return Err(mlua::Error::runtime(
            "stage.addtask in a job: only (ms, function, ...) and (function, ...); handles are managed on the stage's main loop",
        ));
    }
    let id = next_id();
    let mut body = Vec::new();
    crate::value::encode_args(&mut body, args.iter()).map_err(mlua::Error::external)?;
    let (node, stage) = {
        let c = ctx(lua)?;
        (c.node.clone(), c.name.clone())
    };
    node.deliver_inbound(
        &stage,
        crate::inbound::Inbound::AddTask {
            id,
            ms,
            body: body.into(),
        },
    );
    Ok(Value::String(lua.create_string(handle(id))?))
}

/// Adds a task a job sent (see [`from_worker`]).
pub fn added_by_worker(lua: &Lua, id: u64, ms: u64, body: &[u8]) -> mlua::Result<()> {
    let mut values = crate::value::decode_args(lua, body).map_err(mlua::Error::external)?;
    let Some(Value::Function(f)) = values.pop_front() else {
        return Err(mlua::Error::runtime(
            "a task from a job without its function",
        ));
    };
    let mut args = Vec::new();
    let rest: Vec<Value> = values.into_iter().collect();
    crate::value::encode_args(&mut args, rest.iter()).map_err(mlua::Error::external)?;
    add(lua, id, ms, f, args)
}

/// Makes `f` the idle function: run at the next turn, then after the ms it returns; a return
/// of nothing or <= 0 stops it. A reloaded main script's idle function replaces the old one.
pub fn set_idle(lua: &Lua, f: Function) -> mlua::Result<()> {
    let old = ctx_mut(lua)?.timers.idle.take();
    if let Some(old) = old {
        ctx_mut(lua)?.timers.tasks.remove(&old);
    }
    let id = next_id();
    let mut no_args = Vec::new();
    crate::value::encode_args(&mut no_args, []).map_err(mlua::Error::external)?;
    add(lua, id, 0, f, no_args)?;
    ctx_mut(lua)?.timers.idle = Some(id);
    Ok(())
}

/// Timers run per turn of the main loop at most: messages and `Stop` get their turn in between
/// even when timers are always due.
const MAX_PER_TURN: usize = 64;

/// Runs the timers due now (at most [`MAX_PER_TURN`]); returns when the next one is due.
pub fn run_due(lua: &Lua) -> Option<Instant> {
    // One "now" per turn: a timer that takes longer than its interval is due again only next turn.
    let now = Instant::now();
    for _ in 0..MAX_PER_TURN {
        let (f, args, interval, id, idle) = {
            let mut c = ctx_mut(lua).ok()?;
            let Reverse((when, id, generation)) = *c.timers.queue.peek()?;
            if when > now {
                return Some(when);
            }
            c.timers.queue.pop();
            let Some(t) = c
                .timers
                .tasks
                .get(&id)
                .filter(|t| t.generation == generation)
            else {
                continue; // cancelled or rescheduled
            };
            (
                t.f.clone(),
                t.args.clone(),
                t.interval_ms,
                id,
                c.timers.idle == Some(id),
            )
        };
        let run = crate::value::decode_args(lua, &args)
            .map_err(mlua::Error::external)
            .and_then(|args| crate::sandbox::of(lua)?.call_multi(lua, &f, &[], args));
        let next = match run {
            Ok(r) => match r.into_iter().next() {
                // No value: a task repeats at its interval, the idle function stops.
                None if idle => None,
                None => Some(interval).filter(|i| *i > 0),
                Some(Value::Integer(n)) => u64::try_from(n).ok().filter(|n| *n > 0),
                Some(Value::Number(n)) => (n.is_finite() && n >= 1.0).then_some(n as u64),
                Some(other) => {
                    log::error!(
                        "stage task {}: returned a {}, not a number; stopped",
                        handle(id),
                        other.type_name()
                    );
                    None
                }
            },
            Err(e) => {
                let name = ctx(lua).map(|c| c.name.clone()).unwrap_or_default();
                // Stop it: a timer that fails every time would flood the log at its rate.
                log::error!("stage {name}: task {} stopped: {e}", handle(id));
                crate::api::waitfor::count_error(lua);
                None
            }
        };
        let Ok(mut c) = ctx_mut(lua) else { return None };
        match next {
            Some(ms) if c.timers.tasks.contains_key(&id) => {
                if let Some(t) = c.timers.tasks.get_mut(&id) {
                    t.interval_ms = ms;
                }
                c.timers.schedule(id, ms);
            }
            _ => {
                c.timers.tasks.remove(&id);
            }
        }
    }
    let c = ctx(lua).ok()?;
    c.timers.queue.peek().map(|Reverse((when, _, _))| *when)
}
