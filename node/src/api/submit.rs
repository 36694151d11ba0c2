//! `stage.submit([key,] f | "file+member", v...)` (stage-spec §6.4): run `f(v...)` on a worker.
//!
//! Key 0 (or no key) runs concurrently with anything; jobs with the same non-zero key run one
//! at a time in submission order. A job returning a number `n > 0` runs again `n` ms after it
//! finished. The function travels as bytecode with its upvalues: it sees copies of them, and
//! fresh globals like every callback.

use bytes::Bytes;
use mlua::{Lua, MultiValue, Value};

use super::ctx;
use crate::pool::Job;

/// Encodes `[f, v...]` as a job body.
pub fn job_body(args: &[Value]) -> mlua::Result<Bytes> {
    let mut buf = Vec::with_capacity(64);
    crate::value::encode_args(&mut buf, args.iter()).map_err(mlua::Error::external)?;
    Ok(Bytes::from(buf))
}

/// The function argument must be a function or a `"file+member"` name.
pub fn check_callable(v: Option<&Value>, what: &str) -> mlua::Result<()> {
    match v {
        Some(Value::Function(_)) | Some(Value::String(_)) => Ok(()),
        other => Err(mlua::Error::runtime(format!(
            "{what}: expected a function or \"file+member\", got {}",
            other.map_or("nothing", |v| v.type_name())
        ))),
    }
}

/// `stage.submit(...)`. Returns nothing.
pub fn submit(lua: &Lua, args: MultiValue) -> mlua::Result<()> {
    let mut args: Vec<Value> = args.into_iter().collect();
    let key = match args.first() {
        Some(Value::Integer(k)) => Some(*k),
        Some(Value::Number(k)) if k.fract() == 0.0 && k.is_finite() => Some(*k as i64),
        _ => None,
    };
    if key.is_some() {
        args.remove(0);
    }
    check_callable(args.first(), "stage.submit")?;
    let body = job_body(&args)?;
    let c = ctx(lua)?;
    c.node.pool().submit(Job {
        key: key.unwrap_or(0),
        stage: c.name.clone(),
        body,
        thread: None,
    });
    Ok(())
}
