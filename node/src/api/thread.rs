//! The `thread` object (stage-spec §6.11) and `sleep`.
//!
//! ```lua
//! local to = thread.new(function(n) thread.signal("half way"); return n * 2 end, 21)
//! to.waitfor(function(...) print(...) end)   -- "half way", then 42, on the stage's main loop
//! thread.id, thread.tick                      -- this OS thread's id, now in seconds
//! sleep(ms)                                   -- block a worker (never a main loop)
//! ```
//! The handler is unregistered about a second after the function returned.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mlua::{Function, Lua, MultiValue, Table, Value};

use super::submit::{check_callable, job_body};
use super::{ctx, waitfor};
use crate::pool::Job;

/// Seconds since the Unix epoch with millisecond precision (`thread.tick`, `process.tick`).
pub fn tick() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
}

fn thread_id() -> i64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as i64 }
}

/// `thread.new(f, v...)`: runs `f(v...)` on a worker; returns its handle.
fn new(lua: &Lua, args: MultiValue) -> mlua::Result<Table> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let args: Vec<Value> = args.into_iter().collect();
    check_callable(args.first(), "thread.new")?;
    let (node, stage, worker) = {
        let c = ctx(lua)?;
        (c.node.clone(), c.name.clone(), c.worker)
    };
    if worker {
        return Err(mlua::Error::runtime(
            "thread.new from a worker: start threads from the stage's main loop",
        ));
    }
    let id = format!("thread:{}", NEXT.fetch_add(1, Ordering::Relaxed));
    node.pool().submit(Job {
        key: 0,
        stage,
        body: job_body(&args)?,
        thread: Some(id.clone()),
    });
    let handle = lua.create_table()?;
    handle.set("id", id.as_str())?;
    handle.set(
        "waitfor",
        lua.create_function(move |lua, args: MultiValue| {
            // to.waitfor(fn, bound...) / to.waitfor(nil) / to.waitfor(bound...): the forms of
            // stage.waitfor with the thread's id.
            let mut all = MultiValue::from_iter([Value::String(lua.create_string(&id)?)]);
            all.extend(args);
            waitfor::waitfor(lua, all)
        })?,
    )?;
    Ok(handle)
}

/// `thread.signal(v...)`: from inside a `thread.new` function, to its handler.
fn signal(lua: &Lua, args: MultiValue) -> mlua::Result<()> {
    let (node, stage, thread) = {
        let c = ctx(lua)?;
        (c.node.clone(), c.name.clone(), c.thread.clone())
    };
    let Some(id) = thread else {
        return Err(mlua::Error::runtime(
            "thread.signal: Thread is not in use (call it inside a thread.new function)",
        ));
    };
    crate::worker::deliver(&node, &stage, &id, args);
    Ok(())
}

/// `sleep(ms)`: blocks the calling worker.
fn sleep(lua: &Lua, ms: f64) -> mlua::Result<()> {
    if !ctx(lua)?.worker {
        return Err(mlua::Error::runtime(
            "sleep() would block the stage's main loop; use stage.addtask, or sleep inside stage.submit",
        ));
    }
    if ms.is_finite() && ms > 0.0 {
        // At most a day: a typo must not park a worker for a geological age.
        std::thread::sleep(Duration::from_millis(ms.min(86_400_000.0) as u64));
    }
    Ok(())
}

/// Installs `thread` and `sleep`.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let thread = lua.create_table()?;
    thread.set("new", lua.create_function(new)?)?;
    thread.set("signal", lua.create_function(signal)?)?;
    let meta = lua.create_table()?;
    meta.set(
        "__index",
        lua.create_function(|_, (_, k): (Table, String)| {
            Ok(match k.as_str() {
                "id" => Value::Integer(thread_id()),
                "tick" => Value::Number(tick()),
                _ => Value::Nil,
            })
        })?,
    )?;
    thread.set_metatable(Some(meta))?;
    let g = lua.globals();
    g.set("thread", thread)?;
    let f: Function = lua.create_function(sleep)?;
    g.set("sleep", f)
}
