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
    args: Vec<Value>,
    interval_ms: u64,
}

/// The stage's pending timers.
#[derive(Default)]
pub struct Timers {
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    tasks: HashMap<u64, Task>,
    next: u64,
}

impl Timers {
    fn schedule(&mut self, id: u64, after_ms: u64) {
        self.queue.push(Reverse((
            Instant::now() + Duration::from_millis(after_ms),
            id,
        )));
    }
}

fn handle(id: u64) -> String {
    format!("task:{id}")
}

/// `stage.addtask(...)`.
pub fn addtask(lua: &Lua, args: MultiValue) -> mlua::Result<Value> {
    if ctx(lua)?.worker {
        return Err(mlua::Error::runtime(
            "stage.addtask in a worker: a job repeats by returning the delay in ms; timers belong to the stage's main loop",
        ));
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
            if matches!(args.get(1), None | Some(Value::Nil)) {
                let found = ctx_mut(lua)?.timers.tasks.remove(&id).is_some();
                return Ok(Value::Boolean(found));
            }
            Err(mlua::Error::runtime(
                "stage.addtask(handle, ...): only cancelling with nil is supported so far",
            ))
        }
        Some(Value::Function(_)) => start(lua, 0, args),
        Some(Value::Integer(_) | Value::Number(_)) => {
            let ms = match args.remove(0) {
                Value::Integer(i) => i.unsigned_abs(),
                v => v.as_f64().unwrap_or(0.0).abs() as u64,
            };
            start(lua, ms, args)
        }
        _ => Err(mlua::Error::runtime(
            "stage.addtask: expected (ms, function, ...), (function, ...) or (handle, nil)",
        )),
    }
}

fn start(lua: &Lua, ms: u64, mut args: Vec<Value>) -> mlua::Result<Value> {
    let Some(Value::Function(f)) = (!args.is_empty()).then(|| args.remove(0)) else {
        return Err(mlua::Error::runtime(
            "stage.addtask: missing the function to run",
        ));
    };
    let mut c = ctx_mut(lua)?;
    let id = c.timers.next;
    c.timers.next += 1;
    c.timers.tasks.insert(
        id,
        Task {
            f,
            args,
            interval_ms: ms,
        },
    );
    c.timers.schedule(id, ms);
    drop(c);
    Ok(Value::String(lua.create_string(handle(id))?))
}

/// Timers run per turn of the main loop at most: messages and `Stop` get their turn in between
/// even when timers are always due.
const MAX_PER_TURN: usize = 64;

/// Runs the timers due now (at most [`MAX_PER_TURN`]); returns when the next one is due.
pub fn run_due(lua: &Lua) -> Option<Instant> {
    // One "now" per turn: a timer that takes longer than its interval is due again only next turn.
    let now = Instant::now();
    for _ in 0..MAX_PER_TURN {
        let (f, args, interval, id) = {
            let mut c = ctx_mut(lua).ok()?;
            let Reverse((when, id)) = *c.timers.queue.peek()?;
            if when > now {
                return Some(when);
            }
            c.timers.queue.pop();
            let Some(t) = c.timers.tasks.get(&id) else {
                continue; // cancelled
            };
            (t.f.clone(), t.args.clone(), t.interval_ms, id)
        };
        let run = crate::sandbox::of(lua)
            .and_then(|sb| sb.call_multi(lua, &f, &[], MultiValue::from_iter(args)));
        let next = match run {
            Ok(r) => match r.into_iter().next() {
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
    c.timers.queue.peek().map(|Reverse((when, _))| *when)
}
